"""Pages of the publisher workspace, under /publish/."""

from django.urls import path

from releases.publish import views_licenses, views_models, views_tiers, views_workspace

urlpatterns = [
    path("", views_workspace.workspace_home, name="publish-home"),
    # Before the organization pages, so that no organization slug can shadow it.
    path("invitations/<int:invitation_id>/", views_workspace.invitation_detail, name="publish-invitation"),
    path("<slug:org_slug>/", views_workspace.organization_overview, name="publish-organization"),
    path("<slug:org_slug>/members/", views_workspace.members, name="publish-members"),
    path(
        "<slug:org_slug>/members/<int:membership_id>/role/",
        views_workspace.member_role,
        name="publish-member-role",
    ),
    path(
        "<slug:org_slug>/members/<int:membership_id>/remove/",
        views_workspace.member_remove,
        name="publish-member-remove",
    ),
    path(
        "<slug:org_slug>/invitations/<int:invitation_id>/withdraw/",
        views_workspace.invitation_cancel,
        name="publish-invitation-withdraw",
    ),
    path("<slug:org_slug>/models/", views_models.model_list, name="publish-models"),
    path("<slug:org_slug>/models/new/", views_models.model_new, name="publish-model-new"),
    path("<slug:org_slug>/models/<int:model_id>/", views_models.model_detail, name="publish-model"),
    path(
        "<slug:org_slug>/models/<int:model_id>/releases/new/",
        views_models.release_new,
        name="publish-release-new",
    ),
    path("<slug:org_slug>/releases/<int:release_id>/", views_models.release_detail, name="publish-release"),
    path(
        "<slug:org_slug>/releases/<int:release_id>/publish/",
        views_models.release_publish_view,
        name="publish-release-publish",
    ),
    path(
        "<slug:org_slug>/releases/<int:release_id>/tiers/new/", views_tiers.tier_new, name="publish-tier-new"
    ),
    path("<slug:org_slug>/tiers/<int:tier_id>/", views_tiers.tier_edit_view, name="publish-tier"),
    path(
        "<slug:org_slug>/tiers/<int:tier_id>/form/",
        views_tiers.tier_application_form_view,
        name="publish-tier-form",
    ),
    path("<slug:org_slug>/licenses/", views_licenses.license_list, name="publish-licenses"),
    path("<slug:org_slug>/licenses/<int:license_id>/", views_licenses.license_detail, name="publish-license"),
]
