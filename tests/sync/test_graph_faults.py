"""The Entra target when Graph or the sign-in service misbehave: throttling storms,
503s, the write budget, the circuit breaker, expired tokens, refused credentials and
certificates, and errors translated at the target boundary."""

from __future__ import annotations

import base64
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sync.targets.base import PersonKey, TargetAuthError, TargetUnavailable
from sync.targets.graph import GraphTarget

from .graph_fake import TENANT, error, graph_settings, serve_graph, throttled, unavailable


@pytest.fixture
def env():
    with serve_graph() as graph_env:
        yield graph_env


def people(env, n: int) -> list[str]:
    return [env.fake.add_user(f"user{i:05d}@district.org") for i in range(n)]


# ===================================================================== throttling


def test_retry_after_storm_is_waited_out(env):
    """Four 429s with Retry-After: 3 on a PATCH: the target waits 3 s each time, then succeeds."""
    members = people(env, 20)
    gid = env.fake.add_group()
    env.fake.fail("PATCH", "/groups/", throttled(3), times=4)
    result = env.target().add_members(gid, members)
    assert result.done() == members and env.fake.groups[gid] == set(members)
    assert env.clock.slept == [3.0] * 4 and result.requests == 5


def test_503_and_504_back_off_exponentially(env):
    """Without Retry-After the waits are exponential (full jitter, here at its maximum)."""
    members = people(env, 3)
    gid = env.fake.add_group(set(members))
    env.fake.fail("GET", "/members/", unavailable(503), times=2)
    env.fake.fail("GET", "/members/", unavailable(504), times=1)
    assert env.target(retry_backoff_base=0.5).read_members(gid) == set(members)
    assert env.clock.slept == [0.5, 1.0, 2.0]


def test_a_throttle_longer_than_the_wait_limit_gives_up(env):
    """Retry-After beyond retry_max_wait: TargetUnavailable now, not a stuck worker."""
    gid = env.fake.add_group()
    env.fake.fail("GET", "/members/", throttled(900), times=10)
    with pytest.raises(TargetUnavailable, match="429 TooManyRequests"):
        env.target(retry_max_wait=300).read_members(gid)
    assert env.clock.slept == []


def test_write_budget_sleeps_instead_of_being_throttled(env):
    """A Graph that throttles beyond 70 writes per 150 s, a target budgeted at 60: 100
    removals (five $batch of 20) wait for the window once and never see a 429."""
    env.fake.write_limit = 70
    members = people(env, 100)
    gid = env.fake.add_group(set(members))
    result = env.target(write_budget=60).remove_members(gid, members)
    assert len(result.done()) == 100 and env.fake.groups[gid] == set()
    assert env.fake.throttled == 0 and env.clock.slept == [150.0]


def test_throttled_batch_items_are_resent_alone(env):
    """Graph throttling beyond its limit answers 429 inside the $batch: only those are
    resent, after the Retry-After Graph gave (longer than the backoff cap: honoured)."""
    env.fake.write_limit = 30
    members = people(env, 40)
    gid = env.fake.add_group(set(members))
    result = env.target(write_budget=1000).remove_members(gid, members)
    assert len(result.done()) == 40 and env.fake.groups[gid] == set()
    assert env.fake.throttled == 10 and env.fake.calls("DELETE") == 50
    assert env.clock.slept == [151.0]


@pytest.mark.parametrize(("reply", "raised"), [
    (unavailable(503), TargetUnavailable),
    (error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."), TargetAuthError),
], ids=["503", "403"])
def test_a_group_check_that_fails_leaves_the_answered_removals_done(env, reply, raised):
    """A batch's one 404 needs the group's GET, which Graph does not answer (503 until
    the retries run out) or refuses (403): the error is raised with the 19 removed
    members DONE; the absent one has no outcome (not written)."""
    members = people(env, 20)
    gid = env.fake.add_group(set(members[1:]))
    env.fake.fail("GET", f"^/groups/{gid}$", reply, times=99)
    with pytest.raises(raised) as caught:
        env.target().remove_members(gid, members)
    partial = caught.value.partial
    assert partial.done() == members[1:] and members[0] not in partial.outcomes
    assert env.fake.groups[gid] == set()


def test_a_resend_that_fails_leaves_the_first_answers_done(env):
    """Ten of a batch's DELETEs are throttled; sending them again meets a Graph that is
    down (503 to every $batch until the retries run out): TargetUnavailable, with the
    ten removals answered the first time DONE and the ten throttled ones not written."""
    members = people(env, 20)
    gid = env.fake.add_group(set(members))
    for member in members[10:]:
        env.fake.fail("DELETE", f"/members/{member}/", throttled(2))
    env.fake.fail("POST", r"^/\$batch$", unavailable(503), times=99, after=1)
    with pytest.raises(TargetUnavailable, match="503") as caught:
        env.target().remove_members(gid, members)
    partial = caught.value.partial
    assert partial.done() == members[:10] and set(partial.outcomes) == set(members[:10])
    assert env.fake.groups[gid] == set(members[10:])


# ===================================================================== circuit breaker


def test_circuit_opens_with_the_partial_result_then_recovers(env):
    """Graph goes down after the first PATCH: after 3 consecutive failures the call raises
    with the first 20 members DONE; later calls fail at once until the reset time."""
    members = people(env, 60)
    gid = env.fake.add_group()
    target = env.target(circuit_breaker_failures=3, retry_attempts=10, circuit_breaker_reset_seconds=60)
    env.fake.fail("PATCH", "/groups/", unavailable(), times=99, after=1)
    with pytest.raises(TargetUnavailable, match="circuit opened after 3") as caught:
        target.add_members(gid, members)
    partial = caught.value.partial
    assert partial.done() == members[:20] and len(partial.outcomes) == 20
    assert env.fake.groups[gid] == set(members[:20])
    sent = env.graph_requests()
    with pytest.raises(TargetUnavailable, match="circuit open"):
        target.read_members(gid)
    assert env.graph_requests() == sent
    env.fake.faults.clear()
    env.clock.now += 60
    assert target.read_members(gid) == set(members[:20])


def test_connection_errors_become_target_unavailable(env):
    """requests' exceptions never leave the target: no answer at all → TargetUnavailable from them."""
    env.rsps.add(env.rsps.GET, "https://graph.down.test/v1.0/groups/" + str(uuid.uuid4()) + "/members/x",
                 body=requests.ConnectionError("refused"))
    target = env.target(graph_url="https://graph.down.test/v1.0", retry_attempts=3)
    with pytest.raises(TargetUnavailable, match="ConnectionError") as caught:
        target.read_members(str(uuid.uuid4()))
    assert isinstance(caught.value, TargetUnavailable) and env.clock.slept == [1.0, 2.0]


def test_timeouts_become_target_unavailable(env):
    """A read timeout is retried, then reported as TargetUnavailable."""
    gid = env.fake.add_group()
    env.rsps.add(env.rsps.GET, f"https://graph.slow.test/v1.0/groups/{gid}/members/microsoft.graph.user",
                 body=requests.ReadTimeout("read timed out"))
    with pytest.raises(TargetUnavailable, match="ReadTimeout"):
        env.target(graph_url="https://graph.slow.test/v1.0", retry_attempts=2).read_members(gid)


# ===================================================================== tokens


def test_expired_token_is_refreshed_once_mid_run(env):
    """The token expires between two writes: Graph answers 401, msal is asked for a
    new token (a second token request), the write goes through."""
    members = people(env, 40)
    gid = env.fake.add_group()
    target = env.target()
    target.add_members(gid, members[:20])
    env.fake.expire_tokens()
    result = target.add_members(gid, members[20:])
    assert result.done() == members[20:] and env.fake.groups[gid] == set(members)
    assert len(env.fake.token_requests) == 2 and result.requests == 2


def test_401_with_a_fresh_token_is_an_auth_error(env):
    """401 again after the refresh: TargetAuthError, nothing written."""
    members = people(env, 5)
    gid = env.fake.add_group()
    env.fake.fail("PATCH", "/groups/", error(401, "InvalidAuthenticationToken", "Access token validation failure."), 2)
    with pytest.raises(TargetAuthError, match="InvalidAuthenticationToken"):
        env.target().add_members(gid, members)
    assert env.fake.groups[gid] == set()


def test_refused_credentials_stop_before_anything_is_written():
    """The token endpoint refuses the secret: TargetAuthError with msal's error and
    description; no Graph request is sent."""
    refusal = (401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.",
                     "error_codes": [7000215]})
    with serve_graph(token_reply=lambda: refusal) as env:
        members = people(env, 3)
        gid = env.fake.add_group()
        target = env.target()
        for call in (lambda: target.add_members(gid, members), lambda: target.read_members(gid),
                     lambda: target.resolve([PersonKey("p", "user00001@district.org")])):
            with pytest.raises(TargetAuthError, match="invalid_client: AADSTS7000215"):
                call()
        assert env.graph_requests() == 0 and env.fake.groups[gid] == set()


def test_certificate_credential_signs_a_client_assertion(env, tmp_path):
    """With a certificate, msal sends a JWT client assertion signed with the private key
    and naming the certificate by its thumbprint (x5t)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "graph.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    thumbprint = hashes.Hash(hashes.SHA1())
    thumbprint.update(b"certificate")
    hex_thumbprint = thumbprint.finalize().hex().upper()
    gid = env.fake.add_group()
    target = env.target(client_secret=None, certificate={"private_key_path": str(path), "thumbprint": hex_thumbprint})
    assert target.read_members(gid) == set()
    (form,) = env.fake.token_requests
    assert form["grant_type"] == "client_credentials" and "client_secret" not in form
    assert form["scope"] == "https://graph.test/.default"
    assertion = form["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert base64.urlsafe_b64decode(header["x5t"] + "==") == bytes.fromhex(hex_thumbprint)
    claims = jwt.decode(assertion, key.public_key(), algorithms=[header["alg"]],
                        audience=f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token")
    assert claims["iss"] == claims["sub"] == graph_settings().client_id


@pytest.mark.parametrize("content", [None, "not a key"], ids=["missing-file", "garbage"])
def test_unusable_certificate_is_an_auth_error(env, tmp_path, content):
    """A key file that cannot be read or parsed: TargetAuthError, nothing sent to Graph."""
    path = tmp_path / "graph.key"
    if content is not None:
        path.write_text(content)
    gid = env.fake.add_group()
    target = env.target(client_secret=None, certificate={"private_key_path": str(path), "thumbprint": "ab" * 20})
    with pytest.raises(TargetAuthError):
        target.read_members(gid)
    assert env.graph_requests() == 0


def test_injected_msal_app_and_token_provider(env):
    """Tests (or callers) may hand in an msal application or a token provider."""

    class App:
        token_cache = None

        def acquire_token_for_client(self, scopes):
            assert scopes == ["https://graph.test/.default"]
            return {"access_token": env.fake.issue_token()}

    class Tokens:
        def token(self, *, refresh=False):
            return env.fake.issue_token() if refresh or not env.fake.tokens else next(iter(env.fake.tokens))

    gid = env.fake.add_group()
    assert GraphTarget(graph_settings(), msal_app=App()).read_members(gid) == set()
    assert GraphTarget(graph_settings(), tokens=Tokens()).read_members(gid) == set()
    assert env.fake.token_requests == []


def test_sign_in_service_unreachable(env):
    """The sign-in host does not answer: TargetUnavailable (retry later), not an auth error."""
    target = env.target(authority_host="https://login.down.test")
    with pytest.raises(TargetUnavailable, match=r"login.down.test") as caught:
        target.read_members(str(uuid.uuid4()))
    assert isinstance(caught.value.__cause__, requests.ConnectionError) and env.graph_requests() == 0
