{% load gatehouse %}{% autoescape off %}#!/bin/sh
# Gatehouse: download {{ tier.release.model.full_slug }} {{ tier.release.version }}, tier "{{ tier.name }}".
# Run it in the directory that should receive the files:
#   export GATEHOUSE_TOKEN=<a personal access token from your account page>
#   sh gatehouse-tier-{{ tier.pk }}.sh
# Each file is fetched from a fresh, short-lived URL; an interrupted file resumes where it stopped
# when you run the script again. The sums are checked at the end with sha256sum -c.
set -eu
: "${GATEHOUSE_TOKEN:?Set GATEHOUSE_TOKEN to a personal access token}"

fetch() {
    path=$1 url=$2 size=$3
    if [ -f "$path" ] && [ "$(wc -c < "$path")" -eq "$size" ]; then
        echo "already complete: $path"
        return 0
    fi
    case "$path" in */*) mkdir -p "${path%/*}" ;; esac
    attempt=1
    # --continue-at - resumes a partial file; each attempt asks the portal for a fresh URL.
    until curl --fail --location --silent --show-error --continue-at - \
        --header "Authorization: Bearer $GATEHOUSE_TOKEN" --output "$path" "$url"; do
        if [ "$attempt" -ge 5 ]; then
            echo "giving up on $path after $attempt attempts" >&2
            return 1
        fi
        attempt=$((attempt + 1))
        sleep 2
    done
    echo "downloaded: $path"
}

{% for artifact, url in artifacts %}fetch {{ artifact.path|shell_quote }} {{ url|shell_quote }} {{ artifact.size }}
{% endfor %}
cat > SHA256SUMS <<'GATEHOUSE_SHA256SUMS'
{{ manifest }}GATEHOUSE_SHA256SUMS
sha256sum -c SHA256SUMS
{% endautoescape %}
