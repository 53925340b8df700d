"""Uploads of a release's files and its manifest (releases/publish/views_uploads.py)."""

from django.urls import path

from releases.publish import views_uploads as views

release = "<slug:org_slug>/releases/<int:release_id>/"
upload = release + "uploads/<int:artifact_id>/"

urlpatterns = [
    path(release + "upload/", views.upload_page, name="publish-upload"),
    path(release + "upload/gatehouse-upload.py", views.upload_cli_script, name="publish-upload-cli"),
    path(release + "SHA256SUMS", views.release_manifest, name="publish-release-manifest"),
    path(release + "uploads/", views.uploads_collection, name="publish-uploads"),
    path(upload, views.upload_detail, name="publish-upload-detail"),
    path(upload + "part-urls", views.upload_part_urls, name="publish-upload-part-urls"),
    path(upload + "parts", views.upload_parts, name="publish-upload-parts"),
    path(upload + "complete", views.upload_complete, name="publish-upload-complete"),
    path(upload + "discard", views.upload_discard, name="publish-upload-discard"),
]
