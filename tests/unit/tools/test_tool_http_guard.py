"""http.get's SSRF guard and request handling, with a fake resolver and httpx.MockTransport: no real connection.

Every resolver here answers numeric hosts with ``AI_NUMERICHOST`` (no DNS query) and names from a table.
"""

from __future__ import annotations

import gzip
import socket
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.errors import BlockedAddress, ToolError, UnsupportedScheme
from functions.executor.tools import registry
from functions.executor.tools._netguard import AddressGuard, address_problem, parse_allow_hosts
from functions.executor.tools.base import InvalidParams, ToolContext
from functions.executor.tools.http_get import MAX_REDIRECTS, Params, fetch

if TYPE_CHECKING:
    import ipaddress

NAMES = {
    "example.com": ["93.184.216.34"],
    "api.example.com": ["93.184.216.35"],
    "v6.example.com": ["2606:4700:4700::1111"],
    "intranet.example.com": ["10.1.2.3"],
    "metadata.example.com": ["169.254.169.254"],
    "split.example.com": ["93.184.216.34", "192.168.1.10"],
    "mapped.example.com": ["::ffff:10.0.0.1"],
}


def fake_resolver(host: str, port: int, type: int = 0, **_: Any) -> list[tuple[Any, ...]]:
    try:
        return socket.getaddrinfo(host, port, type=type, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [
        (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in NAMES[host]
    ]


class Recorder:
    """A MockTransport handler that records what reached the wire and answers by path."""

    def __init__(self, routes: dict[str, httpx.Response] | None = None) -> None:
        self.routes = routes or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.routes.get(request.url.path, httpx.Response(200, json={"path": request.url.path}))


def get(url: str, recorder: Recorder | None = None, allow: tuple[str, ...] = (), **params: Any) -> dict[str, Any]:
    transport = httpx.MockTransport(recorder or Recorder())
    out = fetch(Params(url=url, **params), allow, resolver=fake_resolver, transport=transport)
    return out.model_dump(by_alias=True)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", ""),  # carrier-grade NAT
        ("240.0.0.1", ""),  # reserved
        ("255.255.255.255", ""),
        ("192.0.2.1", ""),  # documentation
        ("0.1.2.3", ""),  # "this network"
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("2002:7f00:1::", "embedding loopback 127.0.0.1"),  # 6to4
        ("2002:a00:1::", "embedding private 10.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "embedding loopback 127.0.0.1"),  # Teredo, client 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 of the metadata address
        ("2002:808:808::", "6to4"),  # relays are refused even for a public IPv4 (Python 3.13 agrees)
        ("2001:0:4136:e378:8000:63bf:3ff7:f7f7", "Teredo"),
        ("3fff::1", "documentation"),
    ],
)
def test_non_global_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    """GIVEN an address that is not on the public internet WHEN judged THEN it is refused, naming why."""
    problem = address_problem(address)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450::1"])
def test_global_addresses_pass(address: str) -> None:
    """GIVEN a public address WHEN judged THEN nothing is wrong with it."""
    assert address_problem(address) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://2130706434/",  # 127.0.0.2 as one decimal number
        "http://0x7f.1/",  # hexadecimal, short form
        "http://017700000001/",  # octal
        "http://127.1/",
        "http://0/",
        "http://[::1]:8080/",
        "http://[::ffff:7f00:1]/",
        "https://169.254.169.254/latest/meta-data/",
        "http://intranet.example.com/",
        "http://metadata.example.com/",
        "http://mapped.example.com/",
    ],
)
def test_the_guard_refuses_loopback_private_and_numeric_forms(url: str) -> None:
    """GIVEN URLs that reach this machine or a private network WHEN checked THEN BlockedAddress, nothing sent."""
    recorder = Recorder()
    resolver = fake_resolver if "localhost" not in url else socket.getaddrinfo  # localhost resolves from /etc/hosts
    with pytest.raises(BlockedAddress, match="is not a public internet address") as info:
        fetch(Params(url=url), (), resolver=resolver, transport=httpx.MockTransport(recorder))
    assert info.value.code == "BlockedAddress"
    assert recorder.requests == []


def test_every_resolved_address_must_be_global() -> None:
    """GIVEN a name with one public and one private address WHEN checked THEN it is refused, naming the private one."""
    with pytest.raises(BlockedAddress, match=r"split\.example\.com \(resolves to 192\.168\.1\.10\): private"):
        get("http://split.example.com/")


@pytest.mark.parametrize("url", ["ftp://example.com/f", "file:///etc/passwd", "gopher://example.com/", "data:,x"])
def test_only_http_and_https(url: str) -> None:
    """GIVEN another scheme WHEN fetched THEN UnsupportedScheme names it."""
    with pytest.raises(UnsupportedScheme, match="only http and https") as info:
        get(url)
    assert info.value.code == "UnsupportedScheme"


def test_unknown_host_is_its_own_error() -> None:
    """GIVEN a name that does not resolve WHEN fetched THEN HostNotFound (not a refusal)."""
    with pytest.raises(ToolError, match="cannot resolve") as info:
        get("http://no-such-host.example.com/")
    assert info.value.code == "HostNotFound"


def test_connection_is_pinned_to_the_checked_address_with_host_and_sni_kept() -> None:
    """GIVEN a public name WHEN fetched THEN the request goes to the checked IP, Host and SNI name the host."""
    recorder = Recorder()
    out = get("https://api.example.com:8443/items?x=1", recorder, query={"page": 2})
    sent = recorder.requests[0]
    assert sent.url.host == "93.184.216.35" and sent.url.port == 8443
    assert sent.url.params["x"] == "1" and sent.url.params["page"] == "2"
    assert sent.headers["host"] == "api.example.com:8443"
    assert sent.extensions["sni_hostname"] == "api.example.com"
    assert out["url"] == "https://api.example.com:8443/items?x=1&page=2"
    assert out["status_code"] == 200 and out["json"] == {"path": "/items"}


def test_ipv6_destinations_are_pinned_in_brackets() -> None:
    """GIVEN a name with an IPv6 address WHEN fetched THEN the request goes to [that address]."""
    recorder = Recorder()
    get("http://v6.example.com/", recorder)
    assert str(recorder.requests[0].url) == "http://[2606:4700:4700::1111]/"
    assert recorder.requests[0].headers["host"] == "v6.example.com"


def test_redirects_are_followed_and_each_hop_is_checked() -> None:
    """GIVEN a public redirect then a private one WHEN fetched THEN the first is followed, the second refused."""
    recorder = Recorder(
        {
            "/start": httpx.Response(301, headers={"location": "https://api.example.com/next"}),
            "/next": httpx.Response(302, headers={"location": "http://intranet.example.com/admin"}),
        }
    )
    with pytest.raises(BlockedAddress, match=r"intranet\.example\.com"):
        get("http://example.com/start", recorder)
    assert [str(r.url) for r in recorder.requests] == ["http://93.184.216.34/start", "https://93.184.216.35/next"]


def test_redirect_to_another_scheme_is_refused() -> None:
    """GIVEN a redirect to file: WHEN fetched THEN UnsupportedScheme."""
    recorder = Recorder({"/": httpx.Response(302, headers={"location": "file:///etc/passwd"})})
    with pytest.raises(UnsupportedScheme, match="'file'"):
        get("http://example.com/", recorder)


def test_redirects_are_bounded() -> None:
    """GIVEN redirect chains WHEN fetched THEN 5 hops are followed and the 6th is TooManyRedirects."""
    chain = {f"/{i}": httpx.Response(302, headers={"location": f"/{i + 1}"}) for i in range(MAX_REDIRECTS + 1)}
    out = get("http://example.com/0", Recorder({k: v for k, v in chain.items() if k != f"/{MAX_REDIRECTS}"}))
    assert out["url"] == f"http://example.com/{MAX_REDIRECTS}"
    assert len(out["redirects"]) == MAX_REDIRECTS
    with pytest.raises(ToolError, match="more than 5 redirects") as info:
        get("http://example.com/0", Recorder(chain))
    assert info.value.code == "TooManyRedirects"


def test_credentials_are_not_sent_to_another_origin_after_a_redirect() -> None:
    """GIVEN an Authorization header WHEN redirected to another host THEN the header stays behind."""
    recorder = Recorder({"/": httpx.Response(302, headers={"location": "https://api.example.com/x"})})
    get("http://example.com/", recorder, headers={"Authorization": "Bearer secret", "Accept": "application/json"})
    first, second = recorder.requests
    assert first.headers["authorization"] == "Bearer secret"
    assert "authorization" not in second.headers and second.headers["accept"] == "application/json"


def test_without_following_a_redirect_is_the_output() -> None:
    """GIVEN follow_redirects false WHEN a 302 comes THEN it is the output, location in headers."""
    recorder = Recorder({"/": httpx.Response(302, headers={"location": "http://intranet.example.com/"})})
    out = get("http://example.com/", recorder, follow_redirects=False)
    assert out["status_code"] == 302 and out["headers"]["location"] == "http://intranet.example.com/"


def test_response_size_is_capped_even_when_compressed() -> None:
    """GIVEN bodies over max_bytes, declared or gzip-inflated WHEN fetched THEN ResponseTooLarge."""
    bomb = gzip.compress(b"a" * 200_000)
    recorder = Recorder(
        {
            "/big": httpx.Response(200, content=b"x" * 2000),
            "/bomb": httpx.Response(200, content=bomb, headers={"content-encoding": "gzip"}),
            "/ok": httpx.Response(200, content=b"x" * 1000),
        }
    )
    for path in ("/big", "/bomb"):
        with pytest.raises(ToolError, match="limit") as info:
            get(f"http://example.com{path}", recorder, max_bytes=1000)
        assert info.value.code == "ResponseTooLarge"
    assert len(bomb) < 1000
    assert get("http://example.com/ok", recorder, max_bytes=1000)["bytes"] == 1000


def test_output_has_status_headers_json_and_text() -> None:
    """GIVEN JSON, text in latin-1 and an error status WHEN fetched THEN each output field says what came back."""
    recorder = Recorder(
        {
            "/j": httpx.Response(200, json={"title": "Hello"}, headers={"x-tag": "a"}),
            "/t": httpx.Response(
                404, content="café".encode("latin-1"), headers={"content-type": "text/plain; charset=latin-1"}
            ),
        }
    )
    j = get("http://example.com/j", recorder)
    assert j["json"] == {"title": "Hello"} and j["text"] == '{"title":"Hello"}' and j["headers"]["x-tag"] == "a"
    t = get("http://example.com/t", recorder)
    assert (t["status_code"], t["json"], t["text"], t["bytes"]) == (404, None, "café", 4)


def test_allow_list_lets_named_hosts_through_by_host_or_host_and_port() -> None:
    """GIVEN STEPGRAPH_HTTP_ALLOW_HOSTS entries WHEN a listed loopback host is fetched THEN it is; others are not."""
    assert parse_allow_hosts(["LocalHost", "127.0.0.1:8080", " [::1]:9000 ", ""]) == [
        ("localhost", None),
        ("127.0.0.1", 8080),
        ("::1", 9000),
    ]
    recorder = Recorder()
    assert get("http://127.0.0.1:8080/x", recorder, allow=("127.0.0.1:8080",))["status_code"] == 200
    assert str(recorder.requests[0].url) == "http://127.0.0.1:8080/x"
    assert get("http://[::1]:9000/", recorder, allow=("[::1]:9000",))["status_code"] == 200
    with pytest.raises(BlockedAddress, match=r"refused 127\.0\.0\.1: .* not a public internet address"):
        get("http://127.0.0.1:8081/x", recorder, allow=("127.0.0.1:8080",))
    with pytest.raises(BlockedAddress, match=r"not a public internet address"):  # another name is not listed
        get("http://2130706433:8080/x", recorder, allow=("127.0.0.1:8080",))
    guard = AddressGuard(["intranet.example.com"], fake_resolver)
    assert guard.check("http://intranet.example.com:1234/").allowed_by_list


def test_host_header_cannot_be_overridden() -> None:
    """GIVEN a Host header in params WHEN validated THEN InvalidParams: the Host comes from the URL."""
    with pytest.raises(InvalidParams, match="Host header"):
        registry.get("http.get").invoke({"url": "http://example.com/", "headers": {"host": "x"}}, ToolContext())


def test_the_registered_tool_refuses_loopback_by_default() -> None:
    """GIVEN no allow list WHEN the http.get tool runs on a loopback URL THEN the node fails with BlockedAddress."""
    from dataclasses import replace

    from functions.settings import get_settings

    ctx = ToolContext(settings=replace(get_settings(), http_allow_hosts=()))
    with pytest.raises(BlockedAddress, match="loopback"):
        registry.get("http.get").invoke({"url": "http://127.0.0.1:9/"}, ctx)


def test_slow_name_resolution_counts_against_the_time_limit() -> None:
    """GIVEN a resolver that hangs WHEN fetched with a short limit THEN HttpTimeout, and nothing is sent."""
    import threading

    release = threading.Event()

    def hanging_resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        release.wait(5)
        return fake_resolver("example.com", port)

    recorder = Recorder()
    try:
        with pytest.raises(ToolError, match=r"resolving 'example\.com'") as info:
            fetch(
                Params(url="http://example.com/", timeout_seconds=0.1),
                (),
                resolver=hanging_resolver,
                transport=httpx.MockTransport(recorder),
            )
    finally:
        release.set()
    assert info.value.code == "HttpTimeout"
    assert recorder.requests == []


@pytest.mark.parametrize("url", ["http://[::1/", "http://bad\x00host/", "http://example.com:99999/"])
def test_malformed_urls_are_invalid_url_errors(url: str) -> None:
    """GIVEN a URL that cannot be requested WHEN fetched THEN InvalidUrl, not a crash."""
    with pytest.raises(ToolError) as info:
        get(url)
    assert info.value.code == "InvalidUrl"


@given(st.ip_addresses(v=4))
@settings(max_examples=300, deadline=None)
def test_numeric_spellings_of_an_ipv4_address_get_the_same_verdict(address: ipaddress.IPv4Address) -> None:
    """GIVEN any IPv4 address WHEN written dotted, as one decimal, hex or octal number THEN the guard decides alike."""
    value = int(address)
    guard = AddressGuard((), fake_resolver)

    def verdict(host: str) -> str:
        try:
            return guard.check(f"http://{host}/").ip
        except BlockedAddress:
            return "blocked"

    expected = "blocked" if address_problem(address) else str(address)
    assert verdict(str(address)) == expected
    assert verdict(str(value)) == expected
    assert verdict(hex(value)) == expected
    assert verdict(f"0{value:o}") == expected


# ---------------------------------------------------------------------------------------------- hostile servers


def test_every_custom_header_stays_behind_on_a_cross_origin_redirect() -> None:
    # GIVEN credential-bearing headers of every kind, and a redirect to another host
    recorder = Recorder({"/": httpx.Response(302, headers={"Location": "http://api.example.com/next"})})
    sent = {"X-Api-Key": "k1", "X-Auth-Token": "t1", "Private-Token": "p1", "Cookie": "c=1", "Accept": "text/plain"}

    # WHEN http.get follows it
    get("http://example.com/", recorder, headers=sent)

    # THEN the first host got them all, the second only the harmless ones
    first, second = recorder.requests
    assert first.headers["x-api-key"] == "k1" and first.headers["cookie"] == "c=1"
    assert second.headers["host"] == "api.example.com"
    assert {"x-api-key", "x-auth-token", "private-token", "cookie"}.isdisjoint(second.headers)
    assert second.headers["accept"] == "text/plain"


def test_the_same_origin_keeps_its_headers_across_a_redirect() -> None:
    recorder = Recorder({"/": httpx.Response(301, headers={"Location": "/moved"})})
    get("http://example.com/", recorder, headers={"X-Api-Key": "k1"})
    assert [r.headers.get("x-api-key") for r in recorder.requests] == ["k1", "k1"]


@pytest.mark.parametrize("location", [None, "", "   "])
def test_a_redirect_without_a_location_is_a_bad_redirect(location: str | None) -> None:
    # GIVEN a 302 whose Location header is missing or empty
    headers = {} if location is None else {"Location": location}
    recorder = Recorder({"/": httpx.Response(302, headers=headers)})

    # WHEN fetched THEN the error is named BadRedirect, not a crash
    with pytest.raises(ToolError) as raised:
        get("http://example.com/", recorder)
    assert raised.value.code == "BadRedirect"
    assert "no Location header" in raised.value.message


def test_a_deeply_nested_json_body_is_response_too_deep() -> None:
    # GIVEN a JSON body nested 100,000 deep (Python's parser would recurse past its limit), and one 300 deep
    for depth in (100_000, 300):
        body = "[" * depth + "]" * depth
        recorder = Recorder({"/": httpx.Response(200, text=body, headers={"Content-Type": "application/json"})})

        # WHEN fetched THEN the error is named ResponseTooDeep
        with pytest.raises(ToolError) as raised:
            get("http://example.com/", recorder)
        assert raised.value.code == "ResponseTooDeep"


def test_json_nested_within_the_limit_is_parsed() -> None:
    body = "[" * 150 + "1" + "]" * 150
    recorder = Recorder({"/": httpx.Response(200, text=body, headers={"Content-Type": "application/json"})})
    out = get("http://example.com/", recorder)
    value = out["json"]
    for _ in range(150):
        value = value[0] if isinstance(value, list) else value
    assert value == 1


@pytest.mark.parametrize("name", ["Content-Length", "content-length", "Transfer-Encoding", " Connection"])
def test_a_framing_header_param_is_refused_when_the_graph_is_created(name: str) -> None:
    # GIVEN http.get params setting a header that describes the request's framing
    params = {"url": "https://example.com/", "headers": {name: "5"}}

    # WHEN the params are validated (as graph creation does) THEN they are refused, naming the header
    with pytest.raises(InvalidParams, match=r"set by http\.get itself"):
        registry.get("http.get").parse_params(params)
    model = registry.params_model("http.get")
    assert model is not None
    with pytest.raises(ValueError, match=name.strip()):
        model.model_validate(params)


def test_credentials_in_urls_are_redacted_in_the_output_and_the_log() -> None:
    # GIVEN a URL with user info and a token in its query, redirected to another URL carrying a key
    recorder = Recorder({"/a": httpx.Response(302, headers={"Location": "http://example.com/b?api_key=k2&page=2"})})
    lines: list[str] = []
    transport = httpx.MockTransport(recorder)
    params = Params(url="http://alice:s3cret@example.com/a?token=t1&q=x")

    # WHEN fetched
    out = fetch(params, (), resolver=fake_resolver, transport=transport, log=lines.append).model_dump(by_alias=True)

    # THEN the credentials reached the server but appear nowhere in the output or the log
    assert recorder.requests[0].headers["authorization"].startswith("Basic ")
    text = repr(out) + repr(lines)
    for secret in ("s3cret", "alice", "t1", "k2"):
        assert secret not in text, secret
    assert out["url"] == "http://example.com/b?api_key=REDACTED&page=2"
    assert out["redirects"] == [out["url"]]
