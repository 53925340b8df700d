"""The in-app notification list, opening one (which marks it read), and the e-mail preference."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from access.errors import AccessError
from access.forms import NotificationEmailModeForm
from access.inbox import notification_email_mode_set, notification_mark_read, notifications_mark_all_read
from access.models import Notification

NOTIFICATIONS_PAGE_SIZE = 50


@login_required
@require_GET
def notification_list(request):
    form = NotificationEmailModeForm(initial={"mode": request.user.notification_email_mode})
    return _render_list(request, form)


@login_required
@require_GET
def notification_open(request, notification_id: int):
    """Mark the notification read and go where it points (the list when it points nowhere)."""
    try:
        notification = notification_mark_read(user=request.user, notification_id=notification_id)
    except Notification.DoesNotExist:
        raise Http404("No such notification.") from None
    # Notifications carry paths on this site; anything else is not followed.
    if notification.url and url_has_allowed_host_and_scheme(
        notification.url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(notification.url)
    return redirect("notification-list")


@login_required
@require_POST
def notification_read_all(request):
    count = notifications_mark_all_read(user=request.user)
    messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} read.")
    return redirect("notification-list")


@login_required
@require_POST
def notification_email_mode(request):
    form = NotificationEmailModeForm(request.POST)
    if form.is_valid():
        try:
            changed = notification_email_mode_set(user=request.user, mode=form.cleaned_data["mode"])
        except AccessError as error:
            form.add_error("mode", error.message)
        else:
            if changed:
                messages.success(request, "Your e-mail preference is saved.")
            return redirect("notification-list")
    return _render_list(request, form, status=400)


def _render_list(request, form: NotificationEmailModeForm, status: int = 200):
    notifications = Notification.objects.filter(user=request.user).order_by("-created_at", "-pk")
    page = Paginator(notifications, NOTIFICATIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "form": form, "digest_hour": settings.NOTIFICATION_DIGEST_HOUR_UTC}
    return render(request, "access/notifications.html", context, status=status)
