"""The fake OpenAI server, exercised through the real openai SDK.

Deterministic: nothing asserts on how long something took. Where concurrency matters a
responder waits on a barrier, so "4 at once" is guaranteed rather than likely.
"""

from __future__ import annotations

import json
import math
import signal
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fake_server import (
    BAD_REPLIES,
    REFUSAL_TEXT,
    FakeOpenAI,
    Reply,
    RequestRecord,
    TokenBucket,
    admin_call,
    format_reset,
    start_process,
)

SECTION_PROMPT = (
    "Site: Demo\nPage: Setup\n\nSection: Overview > Install\nHint: pip\n\n"
    "Write about 230 words of Markdown for this section only.\n"
)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(seed=1) as fake:
        yield fake


def make_client(fake: FakeOpenAI, api_key: str = "k") -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key=api_key, max_retries=0, timeout=10)


@pytest.fixture
def client(server: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with make_client(server) as sdk:
        yield sdk


def ask(client: openai.OpenAI, text: str = "hello", **kwargs: Any) -> Any:
    return client.chat.completions.create(model="m", messages=user(text), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- replies


def test_reply_has_requested_words_and_usage(server: FakeOpenAI, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test",
        messages=user(SECTION_PROMPT),  # type: ignore[arg-type]
        max_tokens=400,
        extra_headers={"X-Aigen-Stage": "section"},
    )
    reply = raw.parse()
    text = reply.choices[0].message.content or ""
    assert text.startswith("Text for Overview > Install. ")
    assert len(text.split()) == 230
    assert reply.model == "gpt-test"
    assert reply.choices[0].finish_reason == "stop"
    chars = len("You are terse.") + len(SECTION_PROMPT)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == math.ceil(chars / 4)
    assert reply.usage.completion_tokens == math.ceil(230 * 1.3)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert raw.headers["x-request-id"] == "req_fake_0"

    [record] = server.log
    assert (record.index, record.status, record.outcome) == (0, 200, "ok")
    assert (record.stage, record.model, record.response_text) == ("section", "gpt-test", text)
    assert record.body is not None and record.body["max_tokens"] == 400
    assert record.charged_tokens == record.prompt_tokens + 400
    assert record.end is not None and record.end >= record.start
    assert "authorization" in record.headers and "k" not in record.headers["authorization"]
    assert server.count(stage="section", status=200) == 1


def test_default_reply_without_section_line(client: openai.OpenAI) -> None:
    text = ask(client, "Just say something.").choices[0].message.content
    assert text.startswith("Text for request. ")
    assert len(text.split()) == 60


def test_last_word_target_wins(client: openai.OpenAI) -> None:
    # augment states the current target before the length it asks for
    prompt = (
        "Section: A\nThe draft has 50 words; the target is about 90 words.\n"
        "Extend it to about 120 words."
    )
    assert len(ask(client, prompt).choices[0].message.content.split()) == 120


def test_structured_outline_and_review(client: openai.OpenAI) -> None:
    outline_schema = {
        "type": "object",
        "properties": {"titles": {"type": "array", "items": {"type": "string"}, "minItems": 5}},
    }
    review_schema = {
        "type": "object",
        "properties": {
            "scores": {
                "type": "object",
                "properties": {"accuracy": {"type": "integer"}, "clarity": {"type": "integer"}},
            }
        },
    }

    def structured(name: str, schema: dict[str, Any]) -> Any:
        response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        reply = ask(client, "x", response_format=response_format)
        return json.loads(reply.choices[0].message.content)

    assert structured("outline", outline_schema) == {
        "titles": ["Part 1", "Part 2", "Part 3", "Part 4", "Part 5"]
    }
    assert structured("outline", {"type": "object"}) == {"titles": ["Part 1", "Part 2", "Part 3"]}
    assert structured("review", review_schema) == {"scores": {"accuracy": 8, "clarity": 8}}
    assert structured("other", {"type": "object"}) == {}


def test_custom_responder_and_reply(server: FakeOpenAI, client: openai.OpenAI) -> None:
    seen: list[RequestRecord] = []

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        seen.append(record)
        if body["messages"][-1]["content"] == "fail":
            return Reply("overloaded", status=503)
        return Reply("custom answer", headers={"x-extra": "1"}, finish_reason="length")

    server.responder = responder
    raw = client.chat.completions.with_raw_response.create(model="m", messages=user("hi"))  # type: ignore[arg-type]
    assert raw.headers["x-extra"] == "1"
    choice = raw.parse().choices[0]
    assert (choice.message.content, choice.finish_reason) == ("custom answer", "length")
    with pytest.raises(openai.InternalServerError) as info:
        ask(client, "fail")
    assert info.value.status_code == 503
    assert [r.index for r in seen] == [0, 1]
    assert server.records(outcome="503")[0].status == 503


def test_streaming(client: openai.OpenAI) -> None:
    stream = ask(
        client, "Section: S\nabout 12 words", stream=True, stream_options={"include_usage": True}
    )
    parts, usage = [], None
    for chunk in stream:
        parts.extend(c.delta.content or "" for c in chunk.choices)
        usage = chunk.usage or usage
    assert len("".join(parts).split()) == 12
    assert usage is not None and usage.completion_tokens == math.ceil(12 * 1.3)


def test_same_seed_same_delays() -> None:
    def delays() -> list[float]:
        with FakeOpenAI(latency=0.01, jitter=0.5, seed=7) as fake, make_client(fake) as sdk:
            for _ in range(5):
                ask(sdk)
            return [r.delay for r in fake.log]

    first = delays()
    assert first == delays()
    assert all(0.005 <= d <= 0.015 for d in first)
    assert len(set(first)) > 1


# --------------------------------------------------------------------------- faults


def test_storm_gives_429_with_retry_after(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.storm(2, retry_after=2.5)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as info:
            ask(client)
        headers = info.value.response.headers
        assert headers["retry-after"] == "2.5"
        assert headers["retry-after-ms"] == "2500"
        assert info.value.code == "rate_limit_exceeded"
    assert ask(client).choices[0].message.content
    assert [r.outcome for r in server.log] == ["storm", "storm", "ok"]
    assert server.count(status=429) == 2


def test_required_key(server: FakeOpenAI) -> None:
    server.required_key = "sk-right-key-1234567890"
    wrong = "sk-wrong-key-0987654321"
    with (
        make_client(server, api_key=wrong) as sdk,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        ask(sdk)
    error = info.value
    assert error.status_code == 401
    assert error.code == "invalid_api_key"
    assert error.type == "invalid_request_error"
    assert wrong not in error.response.text and "sk-right" not in error.response.text
    assert server.log[0].headers["authorization"] == "Bearer ***"
    with make_client(server, api_key="sk-right-key-1234567890") as sdk:
        assert ask(sdk).choices[0].message.content
    assert [r.outcome for r in server.log] == ["401", "ok"]


def test_unknown_model(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.models = {"good-model"}
    with pytest.raises(openai.NotFoundError) as info:
        ask(client)  # model "m"
    assert info.value.code == "model_not_found"
    reply = client.chat.completions.create(model="good-model", messages=user("hi"))  # type: ignore[arg-type]
    assert reply.model == "good-model"
    assert [m.id for m in client.models.list()] == ["good-model"]


def test_fail_next(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.fail_next(1, status=502)
    with pytest.raises(openai.InternalServerError) as info:
        ask(client)
    assert info.value.status_code == 502
    assert ask(client).choices[0].message.content
    assert [(r.status, r.outcome, r.response_text is None) for r in server.log] == [
        (502, "502", True),
        (200, "ok", False),
    ]


def test_bad_next_spoils_answers_the_way_providers_do(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.bad_next(1, "length")
    server.bad_next(1, "content_filter")
    server.bad_next(1, "refusal")
    server.bad_next(1, "null")
    server.bad_next(1, "empty")
    server.bad_next(1, "no_choices")
    cut, filtered, refused, null, empty = (ask(client, SECTION_PROMPT).choices[0] for _ in range(5))
    assert cut.finish_reason == "length" and cut.message.content
    assert len(cut.message.content.split()) < 230
    assert filtered.finish_reason == "content_filter"
    assert (refused.message.content, refused.message.refusal) == (None, REFUSAL_TEXT)
    assert null.message.content is None and null.message.refusal is None
    assert empty.message.content is not None and not empty.message.content.strip()
    assert ask(client).choices == []
    healthy = ask(client).choices[0]  # the script is used up
    assert (healthy.finish_reason, bool(healthy.message.content)) == ("stop", True)
    assert [r.outcome for r in server.log] == [*BAD_REPLIES, "ok"]
    with pytest.raises(ValueError, match="unknown bad reply"):
        server.bad_next(1, "grumpy")


def test_bad_next_through_the_admin_endpoint(server: FakeOpenAI, client: openai.OpenAI) -> None:
    admin_call(server.base_url, "/_admin/fault", {"bad_next": {"count": 2, "kind": "null"}})
    assert [ask(client).choices[0].message.content for _ in range(3)][:2] == [None, None]
    server.bad_next(3, "empty")
    server.reset()  # forgets spoiled replies still queued
    assert ask(client).choices[0].message.content


def test_fail_rate_one_fails_everything(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.fail_rate = 1.0
    with pytest.raises(openai.InternalServerError):
        ask(client)
    assert server.log[0].outcome == "500"


def test_drop_gives_connection_error(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.drop_next(1)
    with pytest.raises(openai.APIConnectionError):
        ask(client)
    assert ask(client).choices[0].message.content  # a new connection works
    assert [(r.status, r.outcome) for r in server.log] == [(None, "dropped"), (200, "ok")]


def test_down_for_refuses_connections_then_serves(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    port = server.port
    assert ask(client).choices[0].message.content  # a keep-alive connection exists
    server.down_for(60)
    assert server.is_down
    with pytest.raises(openai.APIConnectionError):
        ask(client)
    server.up()  # end the outage now rather than wait for it
    assert not server.is_down
    assert server.port == port
    assert ask(client).choices[0].message.content
    assert server.count(status=200) == 2


def test_stop_is_prompt_with_sleeping_requests() -> None:
    fake = FakeOpenAI(latency=60).start()
    errors: list[Exception] = []
    arrived = threading.Event()
    fake.responder = lambda body, record: (arrived.set(), "late")[1]

    def call() -> None:
        with make_client(fake) as sdk:
            try:
                ask(sdk)
            except openai.APIError as error:
                errors.append(error)

    thread = threading.Thread(target=call)
    thread.start()
    assert arrived.wait(10)
    fake.stop()  # would take a minute if the sleep were not interruptible
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], openai.APIConnectionError)
    assert fake.log[0].outcome == "aborted"


# --------------------------------------------------------------------------- rate limits


def test_rpm_bucket_allows_burst_then_429(client: openai.OpenAI, server: FakeOpenAI) -> None:
    # One request a minute: the bucket cannot refill between the two requests however
    # slow the machine, so the second is refused whatever the clock says.
    server.configure(rpm=1, burst_seconds=60.0)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=user("x"))  # type: ignore[arg-type]
    assert raw.headers["x-ratelimit-limit-requests"] == "1"
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-ratelimit-limit-tokens" not in raw.headers
    with pytest.raises(openai.RateLimitError) as info:
        ask(client)
    headers = info.value.response.headers
    retry_after = float(headers["retry-after"])
    # Never longer than a whole refill; and, the bucket holding one request, exactly
    # what the same answer says refills it (both read at the same instant).
    assert 0 < retry_after <= 60
    assert headers["x-ratelimit-reset-requests"] == format_reset(retry_after)
    assert int(headers["retry-after-ms"]) == round(retry_after * 1000)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    rejected = server.log[1]
    assert (rejected.outcome, rejected.charged_tokens, rejected.delay) == ("429", 0, 0.0)
    assert rejected.retry_after == retry_after


def test_tpm_bucket_charges_prompt_plus_max_tokens(
    client: openai.OpenAI, server: FakeOpenAI
) -> None:
    server.configure(tpm=100, burst_seconds=60.0)  # 100 tokens, refilled over a minute
    # system + user = 14 + 26 = 40 characters = 10 prompt tokens; + 90 = the whole bucket
    text = "y" * 26
    raw = client.chat.completions.with_raw_response.create(
        model="m",
        messages=user(text),  # type: ignore[arg-type]
        max_tokens=90,
    )
    assert raw.headers["x-ratelimit-limit-tokens"] == "100"
    assert raw.headers["x-ratelimit-remaining-tokens"] == "0"
    with pytest.raises(openai.RateLimitError) as info:
        ask(client, text, max_tokens=90)
    assert "tokens" in info.value.message
    headers = info.value.response.headers
    # It waits for the whole bucket: exactly what the same answer says refills it.
    retry_after = float(headers["retry-after"])
    assert 0 < retry_after <= 60
    assert headers["x-ratelimit-reset-tokens"] == format_reset(retry_after)
    assert [r.charged_tokens for r in server.log] == [100, 0]


def test_token_bucket_arithmetic() -> None:
    bucket = TokenBucket(per_minute=120, burst_seconds=1.0, now=0.0)  # 2/s, capacity 2
    assert bucket.wait_for(1, now=0.0) == 0.0
    bucket.take(1, now=0.0)
    bucket.take(1, now=0.0)
    assert bucket.remaining() == 0
    assert bucket.wait_for(1, now=0.0) == pytest.approx(0.5)
    assert bucket.wait_for(1, now=0.25) == pytest.approx(0.25)
    assert bucket.reset_after() == pytest.approx(0.75)
    assert bucket.wait_for(1, now=0.5) == 0.0
    # a cost above the capacity fits a full bucket and leaves it in debt
    big = TokenBucket(per_minute=60, burst_seconds=1.0, now=0.0)  # capacity 1 token
    assert big.wait_for(5, now=0.0) == 0.0
    big.take(5, now=0.0)
    assert big.wait_for(5, now=0.0) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.12, "120ms"),
        (0.0004, "1ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (360, "6m0s"),
        (3725, "1h2m5s"),
    ],
)
def test_format_reset(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text


# --------------------------------------------------------------------------- concurrency


def test_max_in_flight_counts_concurrent_requests() -> None:
    barrier = threading.Barrier(4, timeout=10)

    def responder(body: dict[str, Any], record: RequestRecord) -> str:
        barrier.wait()  # all four are inside the server at once, however threads are scheduled
        return "ok"

    with FakeOpenAI(latency=0.2, responder=responder) as fake, make_client(fake) as sdk:
        threads = [threading.Thread(target=ask, args=(sdk,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert fake.max_in_flight == 4
        assert fake.in_flight == 0
        assert fake.count(status=200) == 4


# --------------------------------------------------------------------------- other processes


def test_admin_endpoints_round_trip(server: FakeOpenAI, client: openai.OpenAI) -> None:
    url = server.base_url
    config = admin_call(url, "/_admin/config", {"latency": 0.0, "rpm": 600, "models": ["m"]})
    assert (config["rpm"], config["models"], config["seed"]) == (600.0, ["m"], 1)
    assert server.rpm == 600.0 and server.models == frozenset({"m"})
    assert admin_call(url, "/_admin/config")["rpm"] == 600.0
    admin_call(url, "/_admin/config", {"rpm": 0})
    assert server.rpm is None

    admin_call(url, "/_admin/fault", {"storm": {"count": 1, "retry_after": 1}})
    with pytest.raises(openai.RateLimitError):
        ask(client)
    ask(client, extra_headers={"X-Aigen-Stage": "review"})

    log = admin_call(url, "/_admin/log")
    records = [RequestRecord.from_json(r) for r in log["records"]]
    assert [(r.outcome, r.stage) for r in records] == [("storm", None), ("ok", "review")]
    assert log["max_in_flight"] == 1 and log["in_flight"] == 0
    assert records[1].body is not None and records[1].body["model"] == "m"
    slim = admin_call(url, "/_admin/log?since=1&bodies=0")["records"]
    assert [(r["index"], r["body"]) for r in slim] == [(1, None)]

    assert admin_call(url, "/_admin/reset", {}) == {"ok": True}
    assert admin_call(url, "/_admin/log")["records"] == []
    assert server.max_in_flight == 0

    with pytest.raises(Exception, match="400"):
        admin_call(url, "/_admin/config", {"no_such_setting": 1})

    # down_for through the admin endpoint takes effect before it answers
    admin_call(url, "/_admin/fault", {"down_for": 60, "drop_next": 1})
    with pytest.raises(openai.APIConnectionError):
        ask(client)
    server.up()
    with pytest.raises(openai.APIConnectionError):
        ask(client)  # the drop
    assert ask(client).choices[0].message.content


def test_cli_prints_ready_and_serves() -> None:
    process, base_url = start_process(
        ["--port", "0", "--latency", "0", "--rpm", "600", "--seed", "3"]
    )
    try:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=10) as sdk:
            raw = sdk.chat.completions.with_raw_response.create(model="m", messages=user("hi"))  # type: ignore[arg-type]
        assert raw.headers["x-ratelimit-limit-requests"] == "600"
        assert raw.parse().choices[0].message.content
        assert admin_call(base_url, "/_admin/config")["seed"] == 3
        assert [r["outcome"] for r in admin_call(base_url, "/_admin/log")["records"]] == ["ok"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout is not None
        process.stdout.close()
