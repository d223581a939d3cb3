# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alerts to Telegram: one cooldown per key, escalation at once, one recovery per alert.

A key's alerts are rate-limited across recoveries (a flapping check sends one alert and
one recovery per cooldown), yet a problem that comes back after its recovery and stays
for a second run in a row is sent at once: the last word is never a stale "recovered".
The cooldown counts as passed ``COOLDOWN_SLACK`` early so a daily job alerts daily
(``decide``).

Flow: ``notify(runtime, key, level, text)`` reads ``<state_dir>/alerts.json`` under
``<state_dir>/locks/.alerts.lock``, decides (``decide``) and records a message to send as
sent, then (unlocked) formats (``format_alert``) and delivers (``send_telegram``), and
takes the record back (locked again) when it was not delivered. The state is best effort: when it cannot be written (full
disk) the message still goes out and the result says ``state_saved: False``.
``merge_state`` folds the state kept in the fallback directory (while the state
directory was read-only) back into the usual one.

The bot token is read from a file and only ever placed in the request URL. Errors
raised here name the API host, never the URL (the token is in its path) nor the token.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
import urllib.parse

from .errors import OpsError
from .state import flock_until, read_json_object, write_json_atomic

LEVELS = {"ok": 0, "warning": 1, "critical": 2}
# A cooldown counts as passed this fraction early: alerts go out when a job ends, and a
# job's duration varies from run to run, so a daily job with a 24 h cooldown must not
# skip the day its run ends a few seconds (or minutes) earlier. 5% of 24 h is 72 min;
# of 1 h, 3 min: less than the 5-minute health period, so still one alert per hour.
COOLDOWN_SLACK = 0.05
TELEGRAM_MAX_CHARS = 4096
MAX_ANSWER_BYTES = 65536  # what is read of the Bot API's answer (a few hundred bytes)
_CUT_MARK = "\n… (cut)"
_LEVEL_STYLE = {
    "warning": ("⚠️", "WARNING"),
    "critical": ("🚨", "CRITICAL"),
    "ok": ("✅", "recovered"),
}


def format_alert(level, host, text, subject="") -> str:
    """The runbook's message style: ``⚠️ host [subject] WARNING: text``.

    ``critical`` uses 🚨 CRITICAL; ``ok`` is a recovery, ``✅ host [subject] recovered: text``.
    """
    if level not in _LEVEL_STYLE:
        raise OpsError("alert level %r is not one of ok, warning, critical" % (level,))
    emoji, word = _LEVEL_STYLE[level]
    head = " ".join(part for part in (emoji, host, subject, word) if part)
    return "%s: %s" % (head, text)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def cut_message(text: str, limit: int = TELEGRAM_MAX_CHARS) -> str:
    """Cut ``text`` to Telegram's limit (counted in UTF-16 units, as Telegram does)."""
    if _utf16_len(text) <= limit:
        return text
    budget = limit - _utf16_len(_CUT_MARK)
    # Characters outside the BMP take two units: shrink until it fits.
    cut = text[:budget]
    while _utf16_len(cut) > budget:
        cut = cut[:-max(1, (_utf16_len(cut) - budget) // 2)]
    return cut + _CUT_MARK


def with_tail(level, host, head, lines, subject="") -> str:
    """``head``, then as many of ``lines`` as fit in one Telegram message with the alert's
    prefix (``format_alert``), newest kept: the last lines of a failing job's output
    (the error) are what matters, so the oldest are dropped first, and said so."""
    room = (TELEGRAM_MAX_CHARS - _utf16_len(format_alert(level, host, head, subject))
            - _utf16_len("\n… (%d earlier lines cut)" % len(lines)))
    kept = []
    for line in reversed(list(lines)):
        if _utf16_len(line) + 1 > room:
            break
        kept.append(line)
        room -= _utf16_len(line) + 1
    kept.reverse()
    if len(kept) < len(lines):
        kept.insert(0, "… (%d earlier lines cut)" % (len(lines) - len(kept)))
    return "\n".join([head] + kept)


def read_token(token_file) -> str:
    """The bot token from ``token_file`` (stripped); ``""`` when the file is missing or empty."""
    try:
        with open(token_file, "r", encoding="utf-8") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise OpsError("cannot read the Telegram token file %s: %s; it must be readable by "
                       "the user running runbook-ops" % (token_file, exc.strerror or exc))


def _api_host(api_url) -> str:
    return urllib.parse.urlsplit(api_url).hostname or "the Telegram API"


def _redact(text, token, api_url):
    for secret in (token, urllib.parse.quote(token, safe=""), urllib.parse.quote(token, safe=":"),
                   urllib.parse.quote(token)):
        if secret:
            text = text.replace(secret, "<token>")
    return text


def _describe_body(body, token, api_url) -> tuple:
    """(description, retry_after) from a Bot API error body; redacted, short."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return "", None
    if not isinstance(data, dict):
        return "", None
    description = str(data.get("description") or "")[:200]
    params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    retry_after = params.get("retry_after")
    if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool):
        retry_after = None
    return _redact(description, token, api_url), retry_after


def send_telegram(api_url, token, chat_id, text, *, timeout=10.0, attempts=4,
                  backoff_seconds=1.0, max_retry_after=30.0, sleep=time.sleep) -> dict:
    """POST ``text`` (cut to 4096) to ``<api_url>/bot<token>/sendMessage``.

    Retries 429 (waiting ``retry_after``, capped at ``max_retry_after``), 5xx and network
    errors with exponential backoff, ``attempts`` tries in all; each try ends within
    ``timeout`` seconds in all (``http_deadline``), however slowly the endpoint answers. Returns
    ``{"sent": True, "attempts": n, "message_id": id}``; raises ``OpsError`` whose
    message names the API host and the reason, never the URL or the token.
    """
    # The stdlib's urllib (Ansible's open_url is not there on hosts), imported only when an
    # alert is really sent: it is the costliest import of a cron run.
    import http.client
    import urllib.error
    import urllib.request

    from .http_deadline import deadline_opener

    if not token:
        raise OpsError("no Telegram bot token; set runbook_ops_telegram_bot_token")
    if not str(chat_id):
        raise OpsError("no Telegram chat id; set runbook_ops_telegram_chat_id")
    host = _api_host(api_url)
    url = "%s/bot%s/sendMessage" % (api_url.rstrip("/"), urllib.parse.quote(token, safe=":"))
    payload = json.dumps({"chat_id": str(chat_id), "text": cut_message(text),
                          "disable_web_page_preview": True}).encode("utf-8")
    problem = "no attempt made"
    for attempt in range(1, max(1, attempts) + 1):
        wait = backoff_seconds * (2 ** (attempt - 1))
        request = urllib.request.Request(url, data=payload, method="POST",
                                         headers={"Content-Type": "application/json"})
        body = b""
        try:
            with deadline_opener(timeout) as opener:
                try:
                    with opener.open(request, timeout=timeout) as response:
                        body = response.read(MAX_ANSWER_BYTES)
                except urllib.error.HTTPError as exc:
                    try:
                        body = exc.read(MAX_ANSWER_BYTES)
                    except Exception:  # pylint: disable=broad-except
                        body = b""
                    finally:
                        exc.close()
                    raise
            try:
                message_id = json.loads(body.decode("utf-8", "replace"))["result"]["message_id"]
            except (ValueError, KeyError, TypeError):
                message_id = None
            return {"sent": True, "attempts": attempt, "message_id": message_id}
        except urllib.error.HTTPError as exc:
            status = exc.code
            description, retry_after = _describe_body(body, token, api_url)
            problem = "HTTP %d%s" % (status, (" (%s)" % description) if description else "")
            if status == 429:
                wait = min(float(retry_after if retry_after is not None else wait),
                           max_retry_after)
            elif status < 500:
                break
        except http.client.HTTPException as exc:  # it answers, but not in HTTP (wrong port)
            problem = "not an HTTP answer (%s)" % type(exc).__name__
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = _redact(str(getattr(reason, "strerror", None) or reason), token, api_url)
        if attempt < attempts:
            sleep(max(0.0, wait))
    raise OpsError("Telegram message not delivered by %s after %d attempt(s): %s; check "
                   "runbook_ops_telegram_api_url, the bot token and the chat id"
                   % (host, attempt, problem))


# A name no job can have (job names have no dot), so the alert state never waits on a job
# named "alerts". Wrappers before this one locked <state_dir>/locks/alerts.lock: during an
# upgrade an old and a new wrapper may write alerts.json at once, each write atomic, so
# at worst one key's update is lost (an alert repeated once).
STATE_LOCK_NAME = ".alerts.lock"


@contextlib.contextmanager
def _state_lock(state_dir, wait_seconds=120.0):
    """An advisory lock beside the state file; proceeds unlocked if it cannot be had.

    Opened without following a symbolic link and without leaking into child processes.
    """
    path = os.path.join(state_dir, "locks", STATE_LOCK_NAME)
    fd = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                     | os.O_NONBLOCK, 0o644)
        flock_until(fd, time.monotonic() + wait_seconds)
    except OSError:
        pass  # unlocked
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _sent_times(previous) -> dict:
    """``{level: epoch}`` of the last delivery of each level (``ok`` = recovery)."""
    sent = previous.get("sent") if isinstance(previous.get("sent"), dict) else {}
    return {level: when for level, when in sent.items()
            if level in LEVELS and isinstance(when, (int, float)) and not isinstance(when, bool)}


def _streak(previous) -> int:
    """How many notify calls in a row before this one reported a problem for the key."""
    streak = previous.get("streak")
    if isinstance(streak, int) and not isinstance(streak, bool) and streak > 0:
        return streak
    return 0


def decide(previous, level, now, cooldown_seconds) -> tuple:
    """Whether to send ``level`` for a key whose stored entry is ``previous``.

    Returns ``(send, reason)``. Rules, per key:

    - a problem (``warning``/``critical``) sends unless an alert of that level or a
      higher one went out less than the cooldown ago, whatever happened in between:
      a rise sends at once, a check flapping between ok and failing sends one alert
      per cooldown, not one per flap;
    - except after a recovery: when the last message for the key was a recovery, a
      problem that has come back for a second run in a row (``streak``) is sent at once,
      so "recovered" never stays the last word for longer than one run while the check
      fails; an alternating flap never has two failing runs in a row, so it still sends
      one alert and one recovery per cooldown;
    - "less than the cooldown ago" allows ``COOLDOWN_SLACK`` of the cooldown, so a
      daily job whose alert goes out a few seconds (or minutes) earlier than
      yesterday's still alerts daily; a sending time in the future (the clock was set
      back) counts as expired;
    - ``ok`` after a problem sends one recovery, and only for an alert that went out
      (one recovery per alert, so at most one per cooldown too).
    """
    previous = previous or {}
    before = previous.get("level", "ok")
    if before not in LEVELS:
        before = "ok"
    sent = _sent_times(previous)
    last_alert = max((when for lvl, when in sent.items() if lvl != "ok"), default=None)
    recovered_last = last_alert is not None and sent.get("ok", float("-inf")) >= last_alert
    if level == "ok":
        if before == "ok":
            return False, "already ok"
        if last_alert is None:
            return False, "no alert went out for the %s, so no recovery" % before
        if recovered_last:
            return False, "the recovery after the last alert was already sent"
        return True, "recovery from %s" % before
    rise = LEVELS[level] > LEVELS[before]
    why = "rise from %s to %s" % (before, level) if rise else "%s not yet delivered" % level
    same_or_higher = [when for lvl, when in sent.items()
                      if lvl != "ok" and LEVELS[lvl] >= LEVELS[level]]
    if not same_or_higher:
        return True, why
    if max(same_or_higher) > now:
        return True, "cooldown passed (last sent at a later time: the clock was set back)"
    left = max(same_or_higher) + cooldown_seconds - now
    if left <= cooldown_seconds * COOLDOWN_SLACK:
        return True, why if rise else "cooldown passed"
    if recovered_last and _streak(previous) >= 1:
        return True, "back after its recovery, %d runs in a row" % (_streak(previous) + 1)
    held = "in cooldown for %d s more" % int(left + 0.999)
    if recovered_last:
        held += " (back after its recovery: sent if still %s next run)" % level
    return False, held


def next_entry(previous, level, now, delivered) -> dict:
    """A key's stored entry after a ``level`` was reported at ``now`` (and ``delivered``
    or not): ``{"level", "since", "updated", "sent": {level: epoch}, "streak"}``, where
    ``streak`` counts the reports of a problem in a row (``decide`` reads it)."""
    entry = dict(previous or {})
    sent = _sent_times(entry)
    if delivered:
        sent[level] = now
    if entry.get("level") != level:
        entry["since"] = now
    entry.update({"level": level, "sent": sent, "updated": now,
                  "streak": 0 if level == "ok" else _streak(entry) + 1})
    return entry


def notify(runtime, key, level, text, *, now=None, send=None, subject="") -> dict:
    """Decide, deliver and record one alert; never raises for delivery or state problems.

    ``subject`` goes between the host and the level (``⚠️ web1 disk WARNING: text``).

    Returns ``{"key", "level", "previous", "sent", "reason", "state_saved"}`` plus
    ``"error"`` when delivery failed and ``"configured": False`` when no chat id or token
    is set. Raises ``OpsError`` only for a bad ``level`` or ``key``.

    The state lock is held to read and decide, and to record, never while the message
    is on its way: a message to be sent is first recorded as sent (so a concurrent run
    of another job sees it in cooldown and does not send it twice), and taken back when
    it was not delivered.
    """
    if level not in LEVELS:
        raise OpsError("alert level %r is not one of ok, warning, critical" % (level,))
    if not isinstance(key, str) or not key.strip():
        raise OpsError("alert key must be a non-empty string")
    send = send or send_telegram
    now = time.time() if now is None else now
    alert = runtime["alert"]
    state_path = os.path.join(runtime["state_dir"], "alerts.json")
    with _state_lock(runtime["state_dir"]):
        state = read_json_object(state_path)
        previous = state.get(key) if isinstance(state.get(key), dict) else {}
        should_send, reason = decide(previous, level, now, alert["cooldown_seconds"])
        result = {"key": key, "level": level, "previous": previous.get("level", "ok"),
                  "sent": False, "reason": reason, "configured": True}
        token = _token(alert, result) if should_send else ""
        if not token and level == "ok" and (previous.get("level", "ok") == "ok" or should_send):
            # Nothing changed (no write on every quiet run), or a recovery that could
            # not go out keeps the old level so the next ok run retries it.
            result["state_saved"] = True
            return result
        state[key] = next_entry(previous, level, now, bool(token))  # with a token: claimed while it is sent
        _save_state(result, state_path, state)
        if not token:
            return result
    try:
        outcome = send(alert["telegram_api_url"], token, alert["telegram_chat_id"],
                       format_alert(level, runtime["host_label"], text, subject))
        result.update(sent=True, attempts=outcome.get("attempts"))
        return result
    except OpsError as exc:
        result["error"] = exc.message
    except Exception as exc:  # pylint: disable=broad-except
        # Whatever the sender raises, the caller (a job's wrapper) goes on: the alert is
        # logged as not delivered, never a traceback.
        result["error"] = "unexpected %s while sending: %s" % (
            type(exc).__name__, _redact(str(exc), token, alert["telegram_api_url"]))
    with _state_lock(runtime["state_dir"]):  # not delivered: take the claim back
        state = read_json_object(state_path)
        state[key] = previous if level == "ok" else next_entry(previous, level, now, False)
        _save_state(result, state_path, state)
    return result


def _token(alert, result) -> str:
    """The bot token when an alert can be sent; else ``""`` and ``result`` says why."""
    try:
        token = read_token(alert["telegram_token_file"]) if alert["telegram_chat_id"] else ""
    except OpsError as exc:
        result["error"] = exc.message
        return ""
    if not token:
        result["configured"] = False
        result["reason"] = "%s; telegram not configured (no %s)" % (
            result["reason"], "chat id" if not alert["telegram_chat_id"] else "token")
    return token


def _save_state(result, state_path, state) -> None:
    """Write ``state``; ``result["state_saved"]`` (and ``state_error``) say how it went."""
    try:
        result["state_saved"] = write_json_atomic(state_path, state)
    except OSError as exc:
        result["state_saved"] = False
        result["state_error"] = "cannot write %s: %s" % (state_path, exc.strerror or exc)


def _merge_entry(ours, theirs) -> dict:
    """One key's entry from two state files: the later level, the later sending per level."""
    ours = ours if isinstance(ours, dict) else {}
    theirs = theirs if isinstance(theirs, dict) else {}

    def updated(entry):
        when = entry.get("updated")
        return when if isinstance(when, (int, float)) and not isinstance(when, bool) else 0

    merged = dict(theirs if updated(theirs) > updated(ours) else ours)
    sent = _sent_times(ours)
    for level, when in _sent_times(theirs).items():
        sent[level] = max(when, sent.get(level, when))
    merged["sent"] = sent
    return merged


def merge_state(state_dir, from_dir) -> int:
    """Fold ``<from_dir>/alerts.json`` into ``<state_dir>/alerts.json`` and remove it.

    ``from_dir`` is the fallback state directory: alerts sent while the state directory
    could not be written are recorded there, and their recoveries must be decided from
    the usual state once it is writable again. Per key the later level wins, and per
    level the later sending time. Returns the number of keys merged; raises ``OSError``
    when the merged state cannot be written (the fallback file is then kept).
    """
    theirs_path = os.path.join(from_dir, "alerts.json")
    ours_path = os.path.join(state_dir, "alerts.json")
    with _state_lock(state_dir), _state_lock(from_dir):
        theirs = read_json_object(theirs_path)
        ours = read_json_object(ours_path)
        for key, entry in theirs.items():
            ours[key] = _merge_entry(ours.get(key), entry)
        if theirs and not write_json_atomic(ours_path, ours):
            raise OSError(errno.EROFS, "disk full or read-only", ours_path)
        try:
            os.unlink(theirs_path)
        except FileNotFoundError:
            pass
    return len(theirs)


def send_test(runtime, text="runbook-ops test alert: delivery works") -> dict:
    """Send one message straight away (no cooldown, no state); for ``alert --test``."""
    alert = runtime["alert"]
    token = read_token(alert["telegram_token_file"])
    message = "✅ %s: %s" % (runtime["host_label"], text)
    return send_telegram(alert["telegram_api_url"], token, alert["telegram_chat_id"], message)
