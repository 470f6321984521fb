"""The pieces behind the web limits, without a server: client addresses, login back-off and
the staff downloads store (the real app's behaviour is in tests/robustness/test_web.py)."""
from __future__ import annotations

import pytest

from ui.downloads import StaffDownloads
from ui.gate import ClientResolver
from ui.limits import LoginBackoff, backoff_message

XFF = b"x-forwarded-for"


@pytest.mark.parametrize(("peer", "headers", "client"), [
    ("192.0.2.9", [(XFF, b"198.51.100.1")], "192.0.2.9"),  # not a trusted proxy: its header means nothing
    ("127.0.0.1", [], "127.0.0.1"),  # a trusted proxy without the header is the client
    ("127.0.0.1", [(XFF, b"198.51.100.1")], "198.51.100.1"),
    ("127.0.0.1", [(XFF, b"203.0.113.5, 198.51.100.1")], "198.51.100.1"),  # the left entry is the client's own claim
    ("127.0.0.1", [(XFF, b"198.51.100.1, 10.0.0.2")], "198.51.100.1"),  # 10.0.0.2 is a trusted proxy too
    ("127.0.0.1", [(XFF, b"198.51.100.1"), (XFF, b"198.51.100.2")], "198.51.100.2"),  # repeated headers join
    ("127.0.0.1", [(XFF, b"198.51.100.1:4321")], "198.51.100.1"),
    ("127.0.0.1", [(XFF, b"[2001:db8::1]:4321")], "2001:db8::1"),
    ("127.0.0.1", [(XFF, b"unknown")], "127.0.0.1"),  # not an address: the proxy counts
    ("127.0.0.1", [(XFF, b"10.0.0.3")], "127.0.0.1"),  # only proxies: the peer
])
def test_the_client_is_the_right_most_address_a_trusted_proxy_did_not_add(peer, headers, client):
    assert ClientResolver(["127.0.0.1", "10.0.0.0/8"]).resolve(peer, headers) == client


def test_another_header_and_no_trusted_proxy():
    real_ip = ClientResolver(["::1"], header="X-Real-IP")
    assert real_ip.resolve("::1", [(b"x-real-ip", b"198.51.100.7"), (XFF, b"203.0.113.5")]) == "198.51.100.7"
    assert ClientResolver([]).resolve("127.0.0.1", [(XFF, b"198.51.100.1")]) == "127.0.0.1"


def test_login_backoff_doubles_after_five_failures_per_client():
    now = [0.0]
    backoff = LoginBackoff(clock=lambda: now[0])
    for n in range(1, 5):
        assert backoff.failed("a") == n and backoff.wait_s("a") == 0.0
    assert backoff.failed("a") == 5
    assert backoff.wait_s("a") == 1.0 and backoff.wait_s("b") == 0.0
    now[0] += 1.0
    assert backoff.wait_s("a") == 0.0
    waits = []
    for _ in range(12):
        backoff.failed("a")
        waits.append(backoff.wait_s("a"))
        now[0] += waits[-1]
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 900.0, 900.0, 900.0]
    backoff.succeeded("a")
    assert backoff.wait_s("a") == 0.0
    assert backoff_message(1.0) == "ログインの失敗が続いたため、しばらく受け付けません。1秒後にもう一度お試しください。"
    # a day without failures starts the count again
    for _ in range(5):
        backoff.failed("c")
    now[0] += 86_400.0
    assert backoff.failed("c") == 1


def test_staff_downloads_belong_to_one_session_expire_and_stay_bounded():
    now = [0.0]
    downloads = StaffDownloads(file_ttl_s=60.0, session_ttl_s=600.0, max_files=3, clock=lambda: now[0])
    key, other = downloads.open_session("page-1"), downloads.open_session("page-2")
    token = downloads.add(key, "a.txt", "text/plain", b"a")
    assert downloads.take(token, other) == (403, None) and downloads.take(token, None) == (403, None)
    status, item = downloads.take(token, key)
    assert (status, item.data, item.name) == (200, b"a", "a.txt")
    assert downloads.take(token, key) == (404, None)
    # a file expires after file_ttl_s
    late = downloads.add(key, "b.txt", "text/plain", b"b")
    now[0] += 60.0
    assert downloads.take(late, key) == (404, None)
    # at most max_files are kept: the oldest goes
    tokens = [downloads.add(key, f"{i}.txt", "text/plain", b"x") for i in range(4)]
    assert len(downloads) == 3 and downloads.take(tokens[0], key) == (404, None)
    # closing the page drops its sessions and files; the other page's key still works
    downloads.close_browser("page-1")
    assert not downloads.is_open(key) and len(downloads) == 0 and downloads.is_open(other)
    # an idle session ends after session_ttl_s
    now[0] += 600.0
    assert not downloads.is_open(other)
