from django.urls import path

from access.views import apply, downloads, notifications, outcomes, reaccept, review, tokens
from access.views import grants as grant_views

urlpatterns = [
    path("tiers/<int:tier_id>/", apply.tier_detail, name="tier-detail"),
    path("tiers/<int:tier_id>/apply/", apply.tier_apply, name="tier-apply"),
    path("tiers/<int:tier_id>/accept/", apply.tier_accept, name="tier-accept"),
    path("tiers/<int:tier_id>/reaccept/", reaccept.tier_reaccept, name="tier-reaccept"),
    path("me/applications/", apply.my_applications, name="my-applications"),
    path("me/applications/<int:application_id>/", apply.application_detail, name="application-detail"),
    path(
        "me/applications/<int:application_id>/withdraw/",
        apply.application_withdraw,
        name="application-withdraw",
    ),
    path("tiers/<int:tier_id>/files/", downloads.tier_files, name="tier-files"),
    path("tiers/<int:tier_id>/SHA256SUMS", downloads.tier_manifest, name="tier-manifest"),
    path("tiers/<int:tier_id>/download.sh", downloads.tier_download_script, name="tier-download-script"),
    path("artifacts/<int:artifact_id>/download", downloads.artifact_download, name="artifact-download"),
    path("me/tokens/", tokens.token_list, name="token-list"),
    path("me/tokens/<int:token_id>/revoke/", tokens.token_revoke_view, name="token-revoke"),
    path("me/notifications/", notifications.notification_list, name="notification-list"),
    path(
        "me/notifications/<int:notification_id>/open/",
        notifications.notification_open,
        name="notification-open",
    ),
    path("me/notifications/read/", notifications.notification_read_all, name="notification-read-all"),
    path("me/notifications/email/", notifications.notification_email_mode, name="notification-email-mode"),
    path("review/", review.review_home, name="review-home"),
    path("review/<slug:org_slug>/", review.review_queue, name="review-queue"),
    path("review/<slug:org_slug>/decide/", review.review_queue_decide, name="review-queue-decide"),
    path(
        "review/applications/<int:application_id>/claim/",
        review.review_application_claim,
        name="review-application-claim",
    ),
    path("review/applications/<int:application_id>/", review.review_application, name="review-application"),
    # Outcomes (access/views/outcomes.py) and grants over time (access/views/grants.py).
    path("me/applications/<int:application_id>/edit/", outcomes.application_edit, name="application-edit"),
    path(
        "me/applications/<int:application_id>/appeal/",
        outcomes.application_appeal_view,
        name="application-appeal",
    ),
    path(
        "review/applications/<int:application_id>/return/",
        outcomes.review_application_return,
        name="review-application-return",
    ),
    path("me/grants/<int:grant_id>/renew/", grant_views.grant_renew, name="grant-renew"),
    path("review/tiers/<int:tier_id>/grants/", grant_views.tier_grants, name="tier-grants"),
    path("review/tiers/<int:tier_id>/grants.csv", grant_views.tier_grants_csv, name="tier-grants-csv"),
    path("review/grants/<int:grant_id>/revoke/", grant_views.tier_grant_revoke, name="tier-grant-revoke"),
]
