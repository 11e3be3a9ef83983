#!/bin/sh
# An event hook for zdrun: tells someone when a program needs attention.
#
#   <runner>
#     event-hook /path/to/notify.sh
#   </runner>
#
# zdrun runs it on every event of every program, one at a time per
# program, with the event in the environment (ZDRUN_EVENT, ZDRUN_NODE,
# ZDRUN_PID, ZDRUN_EXIT_STATUS, ZDRUN_EXIT_SIGNAL, ZDRUN_REASON,
# ZDRUN_COUNT, ZDRUN_TIME). What it prints goes to zdrun's event log.
#
# Set NOTIFY_WEBHOOK to a URL to POST a JSON message there (Slack,
# Mattermost, Matrix bridges and most chat webhooks take {"text": ...}),
# or NOTIFY_MAIL to an address to mail it with sendmail; both may be set.
# Set them in the site's <environment> section (the hook gets the
# program's environment), or in the unit running zdrun.

set -u

case "$ZDRUN_EVENT" in
    # Routine events: nothing to say.
    started|ready|reloaded) exit 0 ;;
esac

host=$(hostname)
what="$ZDRUN_NODE on $host: $ZDRUN_EVENT"
[ -n "$ZDRUN_REASON" ] && what="$what ($ZDRUN_REASON)"
[ "$ZDRUN_COUNT" -gt 1 ] 2>/dev/null && what="$what, $ZDRUN_COUNT times so far"

if [ -n "${NOTIFY_WEBHOOK:-}" ]; then
    # JSON string escaping of the two characters that can occur here.
    text=$(printf '%s' "$what" | sed 's/\\/\\\\/g; s/"/\\"/g')
    curl -fsS -m 10 -H 'Content-Type: application/json' \
        -d "{\"text\": \"$text\"}" "$NOTIFY_WEBHOOK" >/dev/null \
        || echo "webhook failed: $what"
fi

if [ -n "${NOTIFY_MAIL:-}" ]; then
    {
        echo "To: $NOTIFY_MAIL"
        echo "Subject: [zdrun] $what"
        echo
        echo "$what"
        echo
        echo "pid: ${ZDRUN_PID:-none}"
        echo "exit status: ${ZDRUN_EXIT_STATUS:-none}  signal: ${ZDRUN_EXIT_SIGNAL:-none}"
        echo "at: $(date -d "@${ZDRUN_TIME%.*}" 2>/dev/null || echo "$ZDRUN_TIME")"
    } | /usr/sbin/sendmail -t || echo "mail failed: $what"
fi

echo "notified: $what"
