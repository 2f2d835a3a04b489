"""The handheld and the dashboard in a real browser (Debian's Chromium, driven by Playwright),
against the real store server, recommender, Mosquitto and Redis.

A simulated member walks into a zone (a contract ``PresenceEvent``, as a gateway sends
it); the real recommender decides; the prompt shows on the associate's phone; the
associate accepts; the dashboard moves. The server is really stopped and started again to
drop the stream, and a second store's server runs beside the first.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, Page, expect, sync_playwright

from broker_config.contract import (
    CustomerCard,
    EnvelopeSource,
    Feedback,
    FootfallEvent,
    GatewayStatus,
    PresenceEvent,
    Prompt,
    PromptKind,
    Topics,
    decode,
    encode,
    new_event_id,
)
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.mqtt import MqttLink
from floorwalker.services import free_port
from handheld import create_app
from handheld.auth import issue_token
from handheld.server import ApiServer, make_server
from recommender.keys import Keys
from recommender.service import RecommenderService
from tests.conftest import Collector

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
WAIT_MS = 10_000
#: Set to a folder (``make screenshots`` sets docs/screenshots) to keep the screenshots.
SHOTS_ENV = "FLOORWALKER_SCREENSHOTS_DIR"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make setup` (scripts/ensure-system-deps.sh installs chromium)"
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class RunningApi:
    """`floorwalker api` in a thread, on a real port; can be stopped and started again."""

    def __init__(self, config: StoreConfig, endpoints: Endpoints, prefix: str, port: int) -> None:
        self.config, self.endpoints, self.prefix, self.port = config, endpoints, prefix, port
        self.base = f"http://127.0.0.1:{port}"
        self._server: ApiServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        app = create_app(self.config, self.endpoints, topic_prefix=self.prefix, key_prefix=self.prefix)
        server = make_server(app, "127.0.0.1", self.port)
        thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise AssertionError(f"the API did not start on {self.base}")
            time.sleep(0.02)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None


RECOMMENDER = EnvelopeSource("recommender")


@dataclass
class Store:
    config: StoreConfig
    api: RunningApi
    keys: Keys
    topics: Topics
    link: MqttLink
    redis: redis.Redis

    def signin_url(self, associate: str, **kw: object) -> str:
        issued = issue_token(self.redis, self.keys, self.config, associate, **kw)  # type: ignore[arg-type]
        return f"{self.api.base}/signin?token={issued.token}"

    def prompt(
        self,
        associate: str,
        member: str,
        zone: str,
        kind: PromptKind = PromptKind.GREET_VIP,
        text: tuple[str, str, str] = ("Greet them", "Say hello", "Gold member, just walked in."),
    ) -> Prompt:
        """A prompt for ``associate`` exactly as the recommender publishes one."""
        now = time.time()
        headline, suggestion, why = text
        prompt = RECOMMENDER.make(
            Prompt,
            now,
            kind=kind,
            customer=CustomerCard(member=member, tier="gold"),
            zone=zone,
            headline=headline,
            suggestion=suggestion,
            why=why,
            cause_event_id=new_event_id(),
            cause_ts=now,
            expires_at=now + 300,
        )
        info = self.link.publish(self.topics.prompt(self.config.store, associate), encode(prompt), qos=1)
        info.wait_for_publish(10)  # the broker has it
        return prompt

    def enter(self, gateway: EnvelopeSource, zone: str, member: str) -> PresenceEvent:
        """A member's phone is seen entering ``zone``, exactly as a gateway publishes it."""
        event = gateway.make(PresenceEvent, time.time(), member=member, action="enter")
        self.link.publish(self.topics.presence(self.config.store, zone), encode(event), qos=1)
        return event


@pytest.fixture
def store(
    services: Endpoints, prefix: str, store_config: StoreConfig, redis_client: redis.Redis
) -> Iterator[Store]:
    """The demo store: the real recommender and the real API on a free port. Routing as in a
    store (``rules.require_handheld`` on): only associates with a handheld page open."""
    store_config = store_config.model_copy(
        update={"rules": store_config.rules.model_copy(update={"require_handheld": True})}
    )
    service = RecommenderService(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    service.start()
    worker = threading.Thread(target=service.serve, daemon=True)
    worker.start()
    api = RunningApi(store_config, services, prefix, free_port())
    api.start()
    link = MqttLink(services.mqtt_host, services.mqtt_port, client_id=f"{prefix[:-1]}-gateways")
    link.connect()
    yield Store(store_config, api, Keys(store_config.store, prefix), Topics(prefix), link, redis_client)
    link.close()
    api.stop()
    service.stop()
    worker.join(10)


def phone(browser: Browser) -> Page:
    return browser.new_context(viewport=PHONE, device_scale_factor=1, has_touch=True).new_page()


def cards(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all("article.card", "els => els.map(e => e.dataset.promptId)")
    return ids


def received(page: Page) -> list[str]:
    got: list[str] = page.evaluate("window.__fwReceived")
    return got


def test_prompt_appears_is_accepted_and_the_dashboard_moves(
    browser: Browser, store: Store, collect: Callable[[list[str]], Collector]
) -> None:
    feedback = collect([store.topics.feedback(store.config.store, "a-ben")])
    ben = phone(browser)
    ben.goto(store.signin_url("a-ben"))
    expect(ben).to_have_url(f"{store.api.base}/handheld")
    expect(ben.locator("#me")).to_have_text("Ben")
    expect(ben.get_by_test_id("conn")).to_have_text("live", timeout=WAIT_MS)
    ben.get_by_role("button", name="Available").click()
    expect(ben.get_by_role("button", name="Available")).to_have_attribute("aria-pressed", "true")

    manager = browser.new_context(viewport=DESKTOP).new_page()
    manager.goto(store.signin_url("a-amy"))
    expect(manager).to_have_url(f"{store.api.base}/dashboard")
    expect(manager.get_by_test_id("funnel-sent")).to_have_text("0", timeout=WAIT_MS)
    ben_row = manager.locator('tr[data-associate="a-ben"]')
    expect(ben_row).to_contain_text("available", timeout=WAIT_MS)

    event = store.enter(EnvelopeSource("gw-fresh"), "pantry", "m_702cc64d")
    card = ben.locator("article.card").first
    expect(card).to_contain_text("Mrs Chen", timeout=WAIT_MS)
    expect(card).to_contain_text("gold")
    expect(card).to_contain_text("in pantry")
    expect(card.locator(".why")).not_to_be_empty()
    expect(manager.get_by_test_id("funnel-sent")).to_have_text("1", timeout=WAIT_MS)
    expect(ben_row.locator("td").nth(2)).to_have_text("1", timeout=WAIT_MS)  # one open prompt

    card.get_by_role("button", name="Customer card").click()
    expect(ben.get_by_test_id("customer-card")).to_contain_text("Kikkoman", timeout=WAIT_MS)
    ben.get_by_test_id("customer-card").get_by_role("button", name="Close").click()

    card.get_by_role("button", name="Accept").click()
    expect(card.locator(".state")).to_contain_text("Accepted", timeout=WAIT_MS)
    feedback.wait_for(lambda msgs: len(msgs) == 1)
    fb = decode(store.topics, *feedback.messages[0]).payload
    assert isinstance(fb, Feedback) and fb.outcome == "accepted"
    prompt_id = cards(ben)[0]
    assert fb.prompt_id == prompt_id
    assert store.redis.hget(store.keys.handheld_prompt(prompt_id), "associate") == b"a-ben"
    assert event.event_id  # the cause: the prompt came from this presence event

    card.get_by_role("button", name="Done").click()
    expect(card.locator(".state")).to_have_text("Done", timeout=WAIT_MS)
    expect(ben_row.locator("td").nth(2)).to_have_text("0", timeout=WAIT_MS)  # closed prompts are not load


def test_a_dropped_stream_resumes_without_lost_or_repeated_prompts(browser: Browser, store: Store) -> None:
    gw = EnvelopeSource("gw-fresh")
    ben = phone(browser)
    ben.goto(store.signin_url("a-ben"))
    expect(ben.get_by_test_id("conn")).to_have_text("live", timeout=WAIT_MS)
    store.enter(gw, "pantry", "m_702cc64d")
    expect(ben.locator("article.card")).to_have_count(1, timeout=WAIT_MS)

    store.api.stop()  # the connection really drops; the page sees it
    expect(ben.get_by_test_id("conn")).to_have_text("reconnecting…", timeout=WAIT_MS)
    # Two more prompts for Ben while the server is away: the broker keeps them for it. (Sent
    # as the recommender publishes them: with Chen's prompt still open, routing would now
    # count Ben as busy and pick someone else.)
    store.prompt("a-ben", "m_1d54fa96", "pantry")  # each returns once the broker has it
    store.prompt("a-ben", "m_1a459b48", "pantry")
    store.api.start()

    expect(ben.locator("article.card")).to_have_count(3, timeout=WAIT_MS)
    expect(ben.get_by_test_id("conn")).to_have_text("live")
    names = ben.locator("article.card .name").all_inner_texts()
    assert sorted(names) == ["Mr Okafor", "Mr Tanaka", "Mrs Chen"]
    got = received(ben)
    assert len(got) == 3 and len(set(got)) == 3, f"repeated or lost deliveries: {got}"
    assert set(got) == set(cards(ben))


def test_a_second_stores_associate_sees_nothing_of_the_first(
    browser: Browser,
    store: Store,
    services: Endpoints,
    prefix: str,
    store_config: StoreConfig,
    redis_client: redis.Redis,
) -> None:
    other_config = store_config.model_copy(update={"store": "other-store", "name": "Other Market"})
    other = RunningApi(other_config, services, prefix, free_port())
    other.start()
    try:
        other_store = Store(
            other_config, other, Keys("other-store", prefix), store.topics, store.link, redis_client
        )
        theirs = phone(browser)
        theirs.goto(other_store.signin_url("a-ben"))
        expect(theirs.get_by_test_id("conn")).to_have_text("live", timeout=WAIT_MS)
        ours = phone(browser)
        ours.goto(store.signin_url("a-ben"))
        expect(ours.get_by_test_id("conn")).to_have_text("live", timeout=WAIT_MS)

        store.enter(EnvelopeSource("gw-fresh"), "pantry", "m_702cc64d")
        expect(ours.locator("article.card")).to_have_count(1, timeout=WAIT_MS)
        # A sentinel for the other store's Ben, published after ours reached the broker (it
        # is on our page): once it is on their page, ours would have been there before it.
        sentinel = other_store.prompt("a-ben", "m_1d54fa96", "pantry").event_id
        expect(theirs.locator("article.card")).to_have_count(1, timeout=WAIT_MS)
        assert cards(theirs) == [sentinel] and received(theirs) == [sentinel]
        listed = theirs.evaluate("fetch('/api/prompts').then(r => r.json())")
        assert [p["prompt_id"] for p in listed] == [sentinel]

        # Our store's sign-in link is worthless on the other store's server.
        token = store.signin_url("a-ben").split("token=")[1]
        theirs.goto(f"{other.base}/signin?token={token}")
        expect(theirs.get_by_test_id("signin-error")).to_contain_text("unknown or revoked token")
    finally:
        other.stop()


def test_pages_fit_a_phone_and_a_desktop_and_make_screenshots(
    browser: Browser, store: Store, tmp_path: Path
) -> None:
    """The handheld at 360 px has no sideways scrolling; the screenshots are real pages."""
    out = Path(os.environ.get(SHOTS_ENV) or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    now = time.time()
    cfg, topics, s = store.config, store.topics, store.config.store
    for i, gw in enumerate(cfg.gateways):
        src = EnvelopeSource(gw.id)
        state = "offline" if gw.id == "gw-chill" else "online"
        detail = "camera ok · ble 3 beacons" if state == "online" else "last will: connection lost"
        msg = src.make(GatewayStatus, now - 40 * i, state=state, software="0.1.0", detail=detail)
        store.link.publish(topics.status(s, gw.id), encode(msg), qos=1, retain=True)
    crowd = {"entrance": 4, "produce": 9, "pantry": 6, "dairy": 2, "beauty": 1, "checkout": 7}
    cam = EnvelopeSource("gw-entrance")
    for zone, n in crowd.items():
        queue = 5 if zone == "checkout" else None
        ev = cam.make(
            FootfallEvent, now, window_s=60, entered=n * 3, exited=n, occupancy=n, queue_length=queue
        )
        store.link.publish(topics.footfall(s, zone), encode(ev), qos=1)
    # Earlier days, as the API records them, for the "typical day" line.
    for d in range(1, 4):
        day = time.strftime("%Y-%m-%d", time.localtime(now - d * 86_400))
        shape = {h: max(0, int(40 - 1.2 * (h - 13) ** 2)) for h in range(8, 21)}
        store.redis.hset(store.keys.footfall(day), mapping={str(h): v + d for h, v in shape.items()})
    gw = EnvelopeSource("gw-fresh")

    ben = phone(browser)
    ben.goto(store.signin_url("a-ben"))
    expect(ben.get_by_test_id("conn")).to_have_text("live", timeout=WAIT_MS)
    ben.get_by_role("button", name="Available").click()
    store.enter(gw, "pantry", "m_702cc64d")
    expect(ben.locator("article.card")).to_have_count(1, timeout=WAIT_MS)
    # With Chen's prompt open the engine would route the next one to someone else (Ben is
    # busy); for the picture, a second prompt as the recommender would word it.
    store.prompt(
        "a-ben",
        "m_1d54fa96",
        "pantry",
        PromptKind.WIN_BACK,
        (
            "Welcome back Mr Okafor",
            "Mention this week's 10% off rice",
            "Last shopped 61 days ago; usually every 14 days.",
        ),
    )
    expect(ben.locator("article.card")).to_have_count(2, timeout=WAIT_MS)
    ben.locator("article.card").nth(1).get_by_role("button", name="Accept").click()
    expect(ben.locator("article.card").nth(1).locator(".state")).to_contain_text("Accepted", timeout=WAIT_MS)
    ben.wait_for_timeout(1600)  # let the arrival flash fade
    ben.evaluate("window.scrollTo(0, 0)")
    assert ben.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    ben.screenshot(path=str(out / "handheld.png"))

    manager = browser.new_context(viewport=DESKTOP).new_page()
    manager.goto(store.signin_url("a-amy"))
    expect(manager.get_by_test_id("zone-produce")).to_have_text("9", timeout=WAIT_MS)
    expect(manager.get_by_test_id("queue")).to_have_text("5")
    expect(manager.locator('tr[data-gateway="gw-chill"]')).to_contain_text("offline")
    # Chen's greeting (the second card was published by hand); the queue's "open a till" is
    # unserved: no manager has a handheld open (routing counts only associates on the floor).
    expect(manager.get_by_test_id("funnel-sent")).to_have_text("1", timeout=WAIT_MS)
    assert manager.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    manager.screenshot(path=str(out / "dashboard.png"))
    for name in ("handheld.png", "dashboard.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_prompt_goes_to_the_associate_still_on_the_floor(
    browser: Browser, store: Store, collect: Callable[[list[str]], Collector]
) -> None:
    """Issue 20: a second associate signs in, the first signs out, a member enters the first
    one's zone: the prompt appears on the second one's page (the product's promise: within
    2 s; the measured time is printed, the wait is generous for a loaded machine)."""
    statuses = collect([store.topics.associate_status(store.config.store, "a-ben")])
    ben, cara = phone(browser), phone(browser)
    ben.goto(store.signin_url("a-ben"))
    expect(ben.get_by_test_id("conn")).to_have_text("live", timeout=WAIT_MS)
    cara.goto(store.signin_url("a-cara"))
    expect(cara.get_by_test_id("conn")).to_have_text("live", timeout=WAIT_MS)
    ben.get_by_role("button", name="Sign out").click()
    expect(ben).to_have_url(f"{store.api.base}/")
    # The recommender hears it on the retained status topic: wait for that, not for a while.
    statuses.wait_for(lambda msgs: any(b'"signed_out"' in p for _, p in msgs))

    started = time.monotonic()
    store.enter(EnvelopeSource("gw-fresh"), "pantry", "m_702cc64d")  # Ben's zone
    card = cara.locator("article.card").first
    expect(card).to_contain_text("Mrs Chen", timeout=WAIT_MS)
    took = time.monotonic() - started
    print(f"member entered pantry -> card on Cara's page in {took:.2f} s (the promise: 2 s)")
    prompt_id = cards(cara)[0]
    assert store.redis.hget(store.keys.handheld_prompt(prompt_id), "associate") == b"a-cara"


def test_a_manager_reassigns_an_open_prompt_from_the_dashboard(browser: Browser, store: Store) -> None:
    """Issue 20: Ben and Cara have their handhelds open; a gold member walks into pantry
    (Ben's zone) and the prompt shows on Ben's page. Amy, on the dashboard, sees it open
    with Ben as its holder and reassigns it to Cara: it leaves Ben's page and appears on
    Cara's (the measured time is printed; the wait is generous for a loaded machine)."""
    ben, cara = phone(browser), phone(browser)
    for page, who in ((ben, "a-ben"), (cara, "a-cara")):
        page.goto(store.signin_url(who))
        expect(page.get_by_test_id("conn")).to_have_text("live", timeout=WAIT_MS)
    store.enter(EnvelopeSource("gw-fresh"), "pantry", "m_702cc64d")
    expect(ben.locator("article.card").first).to_contain_text("Mrs Chen", timeout=WAIT_MS)
    prompt_id = cards(ben)[0]

    manager = browser.new_context(viewport=DESKTOP).new_page()
    manager.goto(store.signin_url("a-amy"))
    row = manager.locator(f'#open tr[data-prompt="{prompt_id}"]')
    expect(row).to_have_attribute("data-holder", "a-ben", timeout=WAIT_MS)
    expect(row).to_contain_text("Mrs Chen")
    expect(row.get_by_test_id("reassign-to").locator('option[value="a-cara"]')).to_be_enabled(timeout=WAIT_MS)
    row.get_by_test_id("reassign-to").select_option("a-cara")
    started = time.monotonic()
    row.get_by_test_id("reassign").click()
    expect(cara.locator(f'article.card[data-prompt-id="{prompt_id}"]')).to_contain_text(
        "Mrs Chen", timeout=WAIT_MS
    )
    print(f"Reassign clicked -> card on Cara's page in {time.monotonic() - started:.2f} s")
    expect(ben.locator(f'article.card[data-prompt-id="{prompt_id}"]')).to_have_count(0, timeout=WAIT_MS)
    expect(row).to_have_attribute("data-holder", "a-cara", timeout=WAIT_MS)
    expect(manager.locator("#open-msg")).to_contain_text("Sent to Cara")


def test_dismiss_reasons_stay_on_screen_and_the_card_shows_the_reason(browser: Browser, store: Store) -> None:
    """Issue 20 (trial): Dismiss shows its reasons in view on a phone (scrolled to them),
    and the dismissed card says why, also after a reload."""
    ben = phone(browser)
    ben.goto(store.signin_url("a-ben"))
    expect(ben.get_by_test_id("conn")).to_have_text("live", timeout=WAIT_MS)
    for member in ("m_702cc64d", "m_1d54fa96", "m_702cc64d"):
        store.prompt("a-ben", member, "pantry")
    expect(ben.locator("article.card")).to_have_count(3, timeout=WAIT_MS)
    oldest = ben.locator("article.card").nth(2)  # at the bottom, below the fold on a phone
    oldest.get_by_role("button", name="Dismiss").click()
    busy = oldest.get_by_role("button", name="Customer busy")
    expect(busy).to_be_in_viewport(timeout=WAIT_MS)
    busy.click()
    expect(oldest.locator(".state")).to_contain_text("Customer busy", timeout=WAIT_MS)
    ben.reload()
    expect(ben.locator("article.card").nth(2).locator(".state")).to_contain_text(
        "Customer busy", timeout=WAIT_MS
    )


def test_alerts_banner_shows_until_the_first_tap_and_then_prompts_buzz(
    browser: Browser, store: Store
) -> None:
    """Issue 20: browsers vibrate and play sound only after a tap, so the handheld asks for
    one ("Tap to turn on alerts"); after it the banner is gone and a new prompt vibrates."""
    ben = phone(browser)
    ben.add_init_script(
        "navigator.vibrate = () => { window.__fwBuzz = (window.__fwBuzz || 0) + 1; return true; };"
    )
    ben.goto(store.signin_url("a-ben"))
    expect(ben.get_by_test_id("conn")).to_have_text("live", timeout=WAIT_MS)
    banner = ben.get_by_test_id("alerts")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Tap to turn on alerts")
    store.prompt("a-ben", "m_702cc64d", "pantry")
    expect(ben.locator("article.card")).to_have_count(1, timeout=WAIT_MS)
    assert ben.evaluate("window.__fwBuzz || 0") == 0  # no tap yet: no alert (a browser would block it)
    banner.click()
    expect(banner).to_be_hidden()
    store.prompt("a-ben", "m_1d54fa96", "pantry")
    expect(ben.locator("article.card")).to_have_count(2, timeout=WAIT_MS)
    ben.wait_for_function("(window.__fwBuzz || 0) >= 1", timeout=WAIT_MS)
    ben.reload()
    expect(ben.get_by_test_id("alerts")).to_be_visible()  # each page load needs its own tap
