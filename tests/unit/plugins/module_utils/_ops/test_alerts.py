# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""alerts.py against the real fake Bot API on loopback, real state files, a real full disk."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmpfs import mounted_tmpfs

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_telegram import FakeTelegram  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import alerts  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    merge_runtime)

TOKEN = "123456789:AAH-secret_Token_0123456789abcdefXYZ"
DAY = 86400


def _runtime(tmp_path, api_url, chat_id="-1001", token=TOKEN, state_dir=None):
    token_file = tmp_path / "telegram.token"
    if token is not None:
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
    return merge_runtime({
        "host_label": "eatfit24.ru", "state_dir": str(state_dir or tmp_path / "state"),
        "log_dir": str(tmp_path / "log"),
        "alert": {"telegram_api_url": api_url, "telegram_chat_id": chat_id,
                  "telegram_token_file": str(token_file), "cooldown_seconds": DAY}})


@pytest.fixture
def fake(tmp_path):
    with FakeTelegram(TOKEN, record_path=str(tmp_path / "requests.jsonl")) as server:
        yield server


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _assert_secret_free(text):
    assert TOKEN not in text
    assert "AAH-secret" not in text
    assert "/bot" not in text
    assert "sendMessage" not in text


@pytest.mark.parametrize("level, text, expected", [
    ("warning", "диск 70% used (free 15G, threshold 70%)",
     "⚠️ eatfit24.ru WARNING: диск 70% used (free 15G, threshold 70%)"),
    ("critical", "диск 85% used", "🚨 eatfit24.ru CRITICAL: диск 85% used"),
    ("ok", "диск 40% used", "✅ eatfit24.ru recovered: диск 40% used"),
], ids=["warning", "critical", "recovery"])
def test_format_alert_uses_the_runbook_style(level, text, expected):
    assert alerts.format_alert(level, "eatfit24.ru", text) == expected


def test_format_alert_rejects_unknown_level():
    with pytest.raises(OpsError):
        alerts.format_alert("info", "h", "t")


@pytest.mark.parametrize("text", ["x" * 5000, "🚨" * 3000, "a" * 4095 + "🚨" * 10],
                         ids=["ascii", "astral", "boundary"])
def test_cut_message_fits_telegram_limit_in_utf16_units(text):
    cut = alerts.cut_message(text)
    assert len(cut.encode("utf-16-le")) // 2 <= 4096
    assert cut.endswith("(cut)")


def test_cut_message_leaves_short_text_alone():
    assert alerts.cut_message("short") == "short"


@pytest.mark.parametrize("previous, level, now, send, reason", [
    (None, "warning", 1000, True, "rise from ok to warning"),
    ({"level": "warning", "sent": {"warning": 1000}}, "warning", 1000 + DAY * 0.9, False,
     "in cooldown"),
    ({"level": "warning", "sent": {"warning": 1000}}, "warning", 1000 + DAY - 3, True,
     "cooldown passed"),
    ({"level": "warning", "sent": {"warning": 1000}}, "warning", 1000 + DAY, True, "cooldown passed"),
    ({"level": "warning", "sent": {"warning": 1000}}, "critical", 1001, True, "rise from warning"),
    ({"level": "critical", "sent": {"critical": 1000}}, "warning", 1001, False, "in cooldown"),
    ({"level": "critical", "sent": {"critical": 9, "warning": 1000}}, "warning", 1001, False,
     "in cooldown"),
    ({"level": "critical", "sent": {"critical": 1000}}, "ok", 1001, True, "recovery from critical"),
    ({"level": "ok", "sent": {}}, "ok", 1001, False, "already ok"),
    (None, "ok", 1001, False, "already ok"),
    ({"level": "warning", "sent": {}}, "warning", 1001, True, "warning not yet delivered"),
    ({"level": "ok", "sent": {"critical": 1000, "ok": 1060}}, "critical", 1120, False,
     "in cooldown"),
    ({"level": "ok", "sent": {"critical": 1000, "ok": 1060}}, "critical", 1000 + DAY, True,
     "rise from ok to critical"),
    ({"level": "critical", "sent": {"critical": 1000, "ok": 1060}}, "ok", 1180, False,
     "the recovery after the last alert was already sent"),
    ({"level": "critical", "sent": {}}, "ok", 1001, False, "no alert went out"),
    ({"level": "critical", "sent": {"critical": 1000, "ok": 1060}, "streak": 1}, "critical",
     1180, True, "back after its recovery, 2 runs in a row"),
    ({"level": "critical", "sent": {"critical": 1000, "ok": 1060}, "streak": 1}, "warning",
     1180, True, "back after its recovery"),
    ({"level": "critical", "sent": {"critical": 1000}, "streak": 5}, "critical", 1180, False,
     "in cooldown"),
    ({"level": "critical", "sent": {"critical": 1000 + DAY}}, "critical", 1000, True,
     "cooldown passed"),
], ids=["first-warning", "same-in-cooldown", "same-3s-early", "same-after-cooldown", "rise",
        "drop-held-by-the-higher-alert", "drop-in-cooldown", "recovery", "ok-after-ok",
        "ok-first", "undelivered-retried", "flap-back-held", "flap-back-after-cooldown",
        "second-recovery-held", "no-recovery-without-alert", "back-for-a-second-run",
        "back-lower-for-a-second-run", "streak-without-recovery-held", "sent-in-the-future"])
def test_decide_follows_the_alert_contract(previous, level, now, send, reason):
    decided, why = alerts.decide(previous, level, now, DAY)
    assert decided is send
    assert why.startswith(reason)


def test_notify_sends_once_per_cooldown_escalates_at_once_and_recovers_once(tmp_path, fake):
    runtime = _runtime(tmp_path, fake.url)
    steps = [("warning", 0), ("warning", 60), ("critical", 120), ("critical", 180),
             ("critical", DAY + 121), ("ok", DAY + 200), ("ok", DAY + 260)]
    sent = [alerts.notify(runtime, "disk:/", level, "диск %s" % level, now=1e9 + t)["sent"]
            for level, t in steps]
    assert sent == [True, False, True, False, True, True, False]
    texts = [r["text"] for r in fake.messages]
    assert [t.split()[0] for t in texts] == ["⚠️", "🚨", "🚨", "✅"]
    assert all(r["token_ok"] and r["chat_id"] == "-1001" for r in fake.requests)
    state = json.loads((tmp_path / "state" / "alerts.json").read_text())
    assert state["disk:/"]["level"] == "ok"
    recorded = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert len(recorded) == 4


def test_notify_keeps_cooldowns_per_key(tmp_path, fake):
    runtime = _runtime(tmp_path, fake.url)
    assert alerts.notify(runtime, "disk:/", "warning", "a", now=1e9)["sent"]
    assert alerts.notify(runtime, "job:backup", "warning", "b", now=1e9 + 1)["sent"]
    assert not alerts.notify(runtime, "disk:/", "warning", "a", now=1e9 + 2)["sent"]


def test_notify_subject_heads_recoveries_too_and_is_optional(tmp_path, fake):
    runtime = _runtime(tmp_path, fake.url)
    alerts.notify(runtime, "disk:/", "warning", "72% used (free 14G, threshold 70%)",
                  now=1e9, subject="disk")
    alerts.notify(runtime, "disk:/", "ok", "40% used (free 30G, threshold 70%)",
                  now=1e9 + 1, subject="disk")
    alerts.notify(runtime, "job:x", "warning", "no subject", now=1e9 + 2)
    assert [m["text"] for m in fake.messages] == [
        "⚠️ eatfit24.ru disk WARNING: 72% used (free 14G, threshold 70%)",
        "✅ eatfit24.ru disk recovered: 40% used (free 30G, threshold 70%)",
        "⚠️ eatfit24.ru WARNING: no subject"]


def test_notify_without_chat_id_sends_nothing_and_says_so(tmp_path, fake):
    runtime = _runtime(tmp_path, fake.url, chat_id="")
    result = alerts.notify(runtime, "disk:/", "critical", "x")
    assert result["sent"] is False and result["configured"] is False
    assert "telegram not configured" in result["reason"]
    assert fake.requests == []


def test_notify_without_token_file_sends_nothing_and_says_so(tmp_path, fake):
    runtime = _runtime(tmp_path, fake.url, token=None)
    result = alerts.notify(runtime, "disk:/", "critical", "x")
    assert result["sent"] is False and "no token" in result["reason"]
    assert fake.requests == []


def test_failed_delivery_is_retried_by_the_next_run(tmp_path):
    runtime = _runtime(tmp_path, "http://127.0.0.1:%d" % _closed_port())
    first = alerts.notify(runtime, "disk:/", "critical", "x", now=1e9,
                          send=lambda *a: alerts.send_telegram(*a, attempts=1))
    assert first["sent"] is False and "error" in first
    with FakeTelegram(TOKEN) as fake:
        runtime["alert"]["telegram_api_url"] = fake.url
        assert alerts.notify(runtime, "disk:/", "critical", "x", now=1e9 + 60)["sent"] is True


def test_send_retries_429_honouring_capped_retry_after(tmp_path):
    waits = []
    with FakeTelegram(TOKEN, fail_first=2, fail_status=429) as fake:
        result = alerts.send_telegram(fake.url, TOKEN, "42", "hello", sleep=waits.append,
                                      max_retry_after=0.5)
    assert result["sent"] is True and result["attempts"] == 3
    assert waits == [0.5, 0.5]  # retry_after=1 from the server, capped at 0.5
    assert [r["status"] for r in fake.requests] == [429, 429, 200]


def test_send_honours_retry_after_below_the_cap(tmp_path):
    waits = []
    with FakeTelegram(TOKEN, fail_first=1, fail_status=429) as fake:
        alerts.send_telegram(fake.url, TOKEN, "42", "hello", sleep=waits.append)
    assert waits == [1]


def test_send_retries_5xx_with_growing_backoff():
    waits = []
    with FakeTelegram(TOKEN, fail_first=3, fail_status=500) as fake:
        result = alerts.send_telegram(fake.url, TOKEN, "42", "hi", sleep=waits.append,
                                      backoff_seconds=0.01)
    assert result["attempts"] == 4
    assert waits == [0.01, 0.02, 0.04]


def test_send_cuts_long_messages_to_4096():
    with FakeTelegram(TOKEN) as fake:
        alerts.send_telegram(fake.url, TOKEN, "42", "🚨" + "y" * 10000)
    assert len(fake.messages[0]["text"].encode("utf-16-le")) // 2 <= 4096


def test_wrong_token_is_not_retried_and_not_echoed():
    with FakeTelegram("other:token") as fake:
        with pytest.raises(OpsError) as caught:
            alerts.send_telegram(fake.url, TOKEN, "42", "hi", sleep=lambda s: None)
    assert len(fake.requests) == 1
    assert "HTTP 401 (Unauthorized)" in caught.value.message
    _assert_secret_free(caught.value.message)


def test_error_from_a_closed_port_never_contains_url_or_token():
    port = _closed_port()
    with pytest.raises(OpsError) as caught:
        alerts.send_telegram("http://127.0.0.1:%d" % port, TOKEN, "42", "hi",
                             sleep=lambda s: None)
    message = caught.value.message
    _assert_secret_free(message)
    assert str(port) not in message
    assert "127.0.0.1" in message and "refused" in message.lower()


def test_error_from_a_500_that_echoes_the_path_never_contains_the_token():
    with FakeTelegram(TOKEN, fail_first=99, fail_status=500, echo_path=True) as fake:
        with pytest.raises(OpsError) as caught:
            alerts.send_telegram(fake.url, TOKEN, "42", "hi", sleep=lambda s: None)
    assert len(fake.requests) == 4
    assert "HTTP 500" in caught.value.message
    _assert_secret_free(caught.value.message.replace("/bot<token>/sendMessage", ""))
    assert TOKEN not in caught.value.message
    assert TOKEN not in repr(caught.value.details)


def test_notify_result_never_contains_the_token(tmp_path):
    runtime = _runtime(tmp_path, "http://127.0.0.1:%d" % _closed_port())
    result = alerts.notify(runtime, "disk:/", "critical", "x",
                           send=lambda *a: alerts.send_telegram(*a, attempts=1))
    assert TOKEN not in json.dumps(result)
    assert TOKEN not in (tmp_path / "state" / "alerts.json").read_text()


@pytest.fixture
def full_state_dir(tmp_path):
    with mounted_tmpfs(tmp_path / "full-state", "size=64k") as directory:
        (directory / "locks").mkdir()
        subprocess.run(["dd", "if=/dev/zero", "of=%s/filler" % directory, "bs=4k"],
                       capture_output=True, check=False)
        subprocess.run(["dd", "if=/dev/zero", "of=%s/filler2" % directory, "bs=1"],
                       capture_output=True, check=False)
        yield directory


def test_alert_arrives_when_the_state_disk_is_full(tmp_path, fake, full_state_dir):
    assert os.statvfs(full_state_dir).f_bavail == 0
    runtime = _runtime(tmp_path, fake.url, state_dir=full_state_dir)
    result = alerts.notify(runtime, "disk:/", "critical", "диск 100% used")
    assert result["sent"] is True
    assert result["state_saved"] is False
    assert [r["text"] for r in fake.messages] == ["🚨 eatfit24.ru CRITICAL: диск 100% used"]


def test_unreadable_token_file_is_reported_not_raised(tmp_path, fake):
    runtime = _runtime(tmp_path, fake.url)
    runtime["alert"]["telegram_token_file"] = str(tmp_path)  # a directory: cannot be read
    result = alerts.notify(runtime, "disk:/", "critical", "x")
    assert result["sent"] is False and "cannot read the Telegram token file" in result["error"]
    assert fake.requests == []


def test_failed_recovery_is_retried_by_the_next_ok(tmp_path):
    runtime = _runtime(tmp_path, "http://127.0.0.1:%d" % _closed_port())

    def no_retry(*args):
        return alerts.send_telegram(*args, attempts=1)

    with FakeTelegram(TOKEN) as fake:
        runtime["alert"]["telegram_api_url"] = fake.url
        assert alerts.notify(runtime, "k", "critical", "x", now=1e9)["sent"]
    runtime["alert"]["telegram_api_url"] = "http://127.0.0.1:%d" % _closed_port()
    assert "error" in alerts.notify(runtime, "k", "ok", "y", now=1e9 + 1, send=no_retry)
    with FakeTelegram(TOKEN) as fake:
        runtime["alert"]["telegram_api_url"] = fake.url
        assert alerts.notify(runtime, "k", "ok", "y", now=1e9 + 2)["sent"] is True
        assert alerts.notify(runtime, "k", "ok", "y", now=1e9 + 3)["sent"] is False
    assert [m["text"][:1] for m in fake.messages] == ["✅"]


def test_notify_puts_the_subject_between_host_and_level(tmp_path, fake):
    runtime = _runtime(tmp_path, fake.url)
    alerts.notify(runtime, "disk:/", "warning", "70% used (free 15G, threshold 70%)",
                  subject="диск")
    assert fake.messages[0]["text"] == "⚠️ eatfit24.ru диск WARNING: 70% used (free 15G, threshold 70%)"


# --------------------------------------------------------------------------- timing

def test_a_daily_job_alerts_daily_even_when_its_alert_goes_out_3_s_earlier(tmp_path, fake):
    runtime = _runtime(tmp_path, fake.url)  # cooldown 24 h, as the runbook says
    start = 1_700_000_000
    sent = [alerts.notify(runtime, "job:backup", "critical", "job backup failed",
                          now=start + day * (DAY - 3))["sent"] for day in range(4)]
    assert sent == [True, True, True, True]
    assert len(fake.messages) == 4


def test_a_check_flapping_10_times_sends_one_alert_and_one_recovery_per_cooldown(
        tmp_path, fake):
    runtime = _runtime(tmp_path, fake.url)
    start = 1_700_000_000
    for flap in range(10):
        alerts.notify(runtime, "disk:/", "critical", "диск 86%", now=start + flap * 600)
        alerts.notify(runtime, "disk:/", "ok", "диск 84%", now=start + flap * 600 + 300)
    assert [m["text"] for m in fake.messages] == ["🚨 eatfit24.ru CRITICAL: диск 86%",
                                                  "✅ eatfit24.ru recovered: диск 84%"]
    # A day after the first alert the next failure is news again, and so is its recovery.
    alerts.notify(runtime, "disk:/", "critical", "диск 87%", now=start + DAY)
    alerts.notify(runtime, "disk:/", "ok", "диск 60%", now=start + DAY + 300)
    assert len(fake.messages) == 4


# The contract as an independent model: the messages a key's sequence of levels must send.
def _model_messages(events, cooldown):
    sent = []  # (time, level) of every message sent so far
    level_now = "ok"
    failing_before = 0  # problem reports in a row just before this one
    for when, level in events:
        if level == "ok":
            alert_last = sent and sent[-1][1] != "ok"
            if level_now != "ok" and alert_last:
                sent.append((when, "ok"))
            failing_before = 0
        else:
            rank = alerts.LEVELS[level]
            recent = [t for t, lvl in sent if lvl != "ok" and alerts.LEVELS[lvl] >= rank
                      and when - t < cooldown * (1 - alerts.COOLDOWN_SLACK)]
            # After a recovery, a problem that stays for a second run is news again.
            back_for_good = bool(sent) and sent[-1][1] == "ok" and failing_before >= 1
            if not recent or back_for_good:
                sent.append((when, level))
            failing_before += 1
        level_now = level
    return sent


def _decide_messages(events, cooldown):
    """What ``decide`` sends, with the state ``notify`` keeps (delivery always works)."""
    entry, sent = {}, []
    for when, level in events:
        send, _reason = alerts.decide(entry, level, when, cooldown)
        if send:
            sent.append((when, level))
        entry = alerts.next_entry(entry, level, when, send)
    return sent


@given(cooldown=st.sampled_from([600, 3600, DAY]),
       steps=st.lists(st.tuples(st.one_of(st.floats(min_value=0.001, max_value=0.1),
                                          st.floats(min_value=0.001, max_value=1.2)),
                                st.sampled_from(["ok", "warning", "critical"])),
                      min_size=1, max_size=40))
def test_decide_matches_the_model_of_rate_limited_alerts_and_one_recovery_per_alert(
        cooldown, steps):
    events, when = [], 1_700_000_000.0
    for fraction, level in steps:  # gaps from seconds to more than a cooldown
        when += fraction * cooldown
        events.append((when, level))
    assert _decide_messages(events, cooldown) == _model_messages(events, cooldown)


# --------------------------------------------------------------------------- fallback state

def test_merge_state_keeps_the_later_level_and_the_later_sending_per_level(tmp_path):
    main, fallback = tmp_path / "state", tmp_path / "run"
    main.mkdir()
    fallback.mkdir()
    (main / "alerts.json").write_text(json.dumps({
        "job:backup": {"level": "ok", "updated": 100, "sent": {"critical": 50, "ok": 100}},
        "disk:/": {"level": "warning", "updated": 500, "sent": {"warning": 500}},
    }))
    (fallback / "alerts.json").write_text(json.dumps({
        "job:backup": {"level": "critical", "updated": 300, "streak": 1,
                       "sent": {"critical": 300}},
        "disk:/": {"level": "ok", "updated": 400, "sent": {"warning": 10, "ok": 400}},
        "runbook-ops:storage": {"level": "critical", "updated": 300, "sent": {"critical": 300}},
    }))
    assert alerts.merge_state(str(main), str(fallback)) == 3
    merged = json.loads((main / "alerts.json").read_text())
    assert merged["job:backup"] == {"level": "critical", "updated": 300, "streak": 1,
                                    "sent": {"critical": 300, "ok": 100}}
    assert merged["disk:/"] == {"level": "warning", "updated": 500,
                                "sent": {"warning": 500, "ok": 400}}
    assert merged["runbook-ops:storage"]["level"] == "critical"
    assert not (fallback / "alerts.json").exists()
    # and the recoveries are decided from the merged state
    assert alerts.decide(merged["job:backup"], "ok", 400, DAY) == (True, "recovery from critical")
    assert alerts.merge_state(str(main), str(fallback)) == 0


@given(st.lists(st.text(max_size=300), max_size=25), st.text(max_size=200))
def test_with_tail_keeps_the_newest_lines_that_fit_in_one_message(lines, head):
    """Model: the kept lines are the longest suffix of ``lines`` whose message (prefix,
    head, lines, the cut note) fits in 4096 UTF-16 units; older ones are dropped first."""
    lines = [line.replace("\n", " ") for line in lines]
    text = alerts.with_tail("critical", "web1", head, lines)
    message = alerts.format_alert("critical", "web1", text)
    assert len(message.encode("utf-16-le")) // 2 <= alerts.TELEGRAM_MAX_CHARS
    assert alerts.cut_message(message) == message  # never cut at the end again
    body = text[len(head) + 1:].split("\n") if lines else []
    if body and body[0].startswith("… (") and body[0].endswith(" earlier lines cut)"):
        dropped = int(body[0][3:].split()[0])
        body = body[1:]
        assert dropped == len(lines) - len(body) and dropped > 0
    kept = len(body)
    assert body == lines[len(lines) - kept:]


def test_notify_does_not_hold_the_state_lock_while_delivering(tmp_path, fake):
    """Another job's notify must not wait for a slow delivery: while the message is on its
    way the state lock is free, the alert is already recorded as sent (a concurrent run
    sees it in cooldown), and a failed delivery takes that record back."""
    import fcntl  # pylint: disable=import-outside-toplevel
    runtime = _runtime(tmp_path, fake.url)
    lock_path = tmp_path / "state" / "locks" / alerts.STATE_LOCK_NAME
    seen = {}

    def sending(*_args, **_kwargs):
        with open(lock_path, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises when held
        seen["during"] = alerts.notify(runtime, "disk:/", "critical", "also full")
        raise OpsError("Telegram message not delivered by test: slow")

    result = alerts.notify(runtime, "disk:/", "critical", "full", send=sending)
    assert seen["during"]["sent"] is False and "cooldown" in seen["during"]["reason"]
    assert result["sent"] is False and "slow" in result["error"]
    assert not fake.messages
    again = alerts.notify(runtime, "disk:/", "critical", "full")  # the claim was taken back
    assert again["sent"] is True and len(fake.messages) == 1
