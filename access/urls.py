from django.urls import path

from access.views import apply, downloads, reaccept, review, tokens

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
    path("review/", review.review_home, name="review-home"),
    path("review/<slug:org_slug>/", review.review_queue, name="review-queue"),
    path("review/applications/<int:application_id>/", review.review_application, name="review-application"),
]
