"""The admin console in a real browser: headless Chromium from Debian driven by
selenium, signed in through a real OpenID Connect provider on loopback
(oidc-provider-mock: authorization code with PKCE, the full redirect flow), over the
policy's §8 district with a principal. Each page's key facts are read from the DOM;
a help-desk user sees no actions and a forged POST changes nothing; a principal
approves, and the worker grants within its next round; CSRF and session timeouts."""

from __future__ import annotations

import shutil
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import oidc_provider_mock
import pytest
import requests
from pydantic import SecretStr
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from connector import create_app
from sync.worker import Worker
from tests.conftest import AUTH
from tests.connector.test_admin_api import PRINCIPAL, District
from tests.integration import examples
from tests.sync.test_reconcile import GROUP

# Chromium under libfaketime (.ci/run's shifted-clock runs) hangs; these tests are about
# pages, not dates, and those runs deselect them (-m "not browser").
pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "screenshots"

HELPDESK = {"preferred_username": "helpdesk@district.org", "roles": ["Walkin.HelpDesk"]}
ADMIN = {"preferred_username": "dots@district.org", "roles": ["Walkin.Admin"]}
APPROVER = {"preferred_username": PRINCIPAL, "roles": ["Walkin.Approver"]}
NOBODY = {"preferred_username": "teacher@district.org", "roles": []}


@pytest.fixture(scope="module")
def provider():
    with oidc_provider_mock.run_server_in_thread() as server:
        issuer = f"http://localhost:{server.server_port}"
        for sub, claims in (("helpdesk", HELPDESK), ("admin", ADMIN), ("principal", APPROVER), ("nobody", NOBODY)):
            assert requests.put(f"{issuer}/users/{quote(sub)}", json=claims, timeout=10).status_code == 204
        yield issuer


@pytest.fixture
def console(provider, settings, store, clock, client):
    """The district, and the app serving it (console on) on a loopback port, on the test's clock."""
    c = settings.console
    c.issuer, c.client_id, c.client_secret = provider, "walkin-console", SecretStr("console-secret")
    c.session_secret = SecretStr("a-test-session-secret-of-32-bytes!!")
    district = District(client, store, settings, clock)
    app = create_app(settings, store=store, clock=clock)
    server = make_server("localhost", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    district.base = f"http://localhost:{server.server_port}/console"
    yield district
    server.shutdown()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                 # Nothing leaves loopback: the provider's page links a stylesheet on a CDN,
                 # and Chromium would fetch it (and its own update and safe-browsing hosts).
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def sign_in(browser, console, sub: str, page: str = "/") -> None:
    browser.get(console.base + page)
    assert "oauth2/authorize" in browser.current_url  # at the provider
    browser.find_element(By.NAME, "sub").send_keys(sub)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # Back from the provider (its redirect to the callback, then ours) before the test reads the page.
    WebDriverWait(browser, 15).until(lambda d: "oauth2/authorize" not in d.current_url)


def sign_out(browser) -> None:
    browser.find_element(By.CSS_SELECTOR, "header form button").click()
    WebDriverWait(browser, 15).until(lambda d: d.current_url.endswith("/signed-out"))  # before the next page


def text(browser, selector: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, selector).text


def shot(browser, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_help_desk_signs_in_and_reads_a_person(console, browser):
    """Sign-in through the provider lands on the dashboard (4 members, 6 waiting); the person page
    shows each requirement with its evidence and the next step — and no action buttons."""
    sign_in(browser, console, "helpdesk")
    assert browser.current_url == console.base + "/"
    assert text(browser, "#members") == "4" and text(browser, "#waiting") == "6"
    assert "helpdesk@district.org (viewer)" in text(browser, "#who")
    shot(browser, "dashboard")
    browser.get(console.base + "/people?q=" + examples.user_name("G"))
    browser.find_element(By.CSS_SELECTOR, "#results a").click()
    assert text(browser, "#verdict").startswith("No access")
    row = browser.find_element(By.CSS_SELECTOR, "#requirements tr[data-code=NO_APPROVAL]")
    assert "✗ no" in row.text and "no approval for it" in row.text
    assert "Ask the principal or manager of 0789" in text(browser, "#next-steps")
    assert browser.find_elements(By.ID, "approve") == [] and browser.find_elements(By.ID, "sync") == []
    shot(browser, "person")


def test_a_forged_post_changes_nothing(console, browser):
    """A help-desk session posting the approve form (with its own CSRF token) is 403; without the
    token, 400; the store is unchanged either way."""
    sign_in(browser, console, "helpdesk")
    before = console.counts()
    person = console.ids["G"]
    for with_token, status in ((True, "403"), (False, "400")):
        browser.execute_script(
            """const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
               if (arguments[1]) { const t = document.createElement('input'); t.name = 'csrf';
                 t.value = document.querySelector('input[name=csrf]').value; f.appendChild(t); }
               const c = document.createElement('input'); c.name = 'confirm'; c.value = 'yes'; f.appendChild(c);
               const l = document.createElement('input'); l.name = 'location'; l.value = '0789'; f.appendChild(l);
               document.body.appendChild(f); f.submit();""",
            f"{console.base}/people/{person}/approve", with_token)
        assert status in browser.title or status in browser.page_source
        browser.get(console.base + "/")
    assert console.counts() == before


def test_a_principal_approves_and_the_worker_grants(console, browser):
    """P signs in, sees G at 0789 waiting, approves with the confirmation; after the worker's next
    round G is in the group, and G's page says so."""
    sign_in(browser, console, "principal", f"/people/{console.ids['G']}")
    assert browser.current_url.endswith(f"/people/{console.ids['G']}")
    browser.find_element(By.NAME, "confirm").click()
    browser.find_element(By.ID, "approve").click()
    assert "Approved person.g@district.org for 0789" in text(browser, ".flash.ok")
    Worker(console.ctx).step()
    assert "uid=G,ou=people" in console.target.groups[GROUP]
    browser.refresh()
    assert text(browser, "#verdict").startswith("Has access")
    browser.get(console.base + f"/people/{console.ids['A']}")  # A is at 0123: outside P's locations
    assert "403" in browser.title or "Forbidden" in browser.page_source


def test_session_times_out_when_idle(console, browser):
    """Idle past the setting, the next page sends the visitor back to sign in."""
    sign_in(browser, console, "admin")
    assert browser.find_elements(By.CSS_SELECTOR, "#members")
    console.clock.advance(timedelta(minutes=console.settings.console.idle_minutes + 1))
    browser.get(console.base + "/")
    assert "oauth2/authorize" in browser.current_url


def test_no_role_no_console_and_logout(console, browser):
    """A district user with no walkin role is told so (403); signing out ends the session."""
    sign_in(browser, console, "nobody")
    assert "No walkin role" in browser.page_source
    sign_in(browser, console, "admin")
    sign_out(browser)
    browser.get(console.base + "/")
    assert "oauth2/authorize" in browser.current_url


def test_members_page_and_csv(console, browser):
    """Members lists A, C, E and K with why (approver, chain); the CSV link is every row; a
    principal's pending/waiting pages show only 0789."""
    sign_in(browser, console, "helpdesk", "/reports/members")
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#rows tbody td:first-child a")]
    assert sorted(names) == [examples.user_name(n) for n in "acek".upper()]
    assert "WalkIn-Approvers-0456" in text(browser, "#rows")
    shot(browser, "members")
    href = browser.find_element(By.ID, "csv").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    csv = requests.get(href, cookies=cookies, timeout=10)
    assert csv.headers["Content-Type"].startswith("text/csv") and len(csv.text.strip().splitlines()) == 5


def test_a_held_removal_released_from_the_browser(console, browser):
    """The run page lists the held removal and why; a wrong confirmation is refused; typing it
    requests the release, and the worker's next round removes A."""
    d = console
    d.settings.sync.max_removals, d.settings.sync.guard_floor = 0, 0
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert d.client.patch(f"/scim/v2/Users/{d.ids['A']}", headers=AUTH, json=patch).status_code == 200
    from sync.reconcile import reconcile

    held = reconcile(d.ctx, "walkin")
    assert held.status.value == "held"
    sign_in(browser, d, "admin", f"/runs/{held.run_id}")
    assert examples.user_name("A") in text(browser, "#held") and "NOT_ACTIVE" in text(browser, "#held")
    shot(browser, "held-run")
    browser.find_element(By.ID, "confirmation").send_keys("yes")
    browser.find_element(By.ID, "release").click()
    assert "Type “release 1 removals”" in text(browser, ".flash.error")
    browser.find_element(By.ID, "confirmation").send_keys("release 1 removals")
    browser.find_element(By.ID, "release").click()
    assert "Release of 1 removals requested" in text(browser, ".flash.ok")
    assert "dots@district.org (console)" in text(browser, "#requested")
    Worker(d.ctx).release_requested()
    assert "uid=A,ou=people" not in d.target.groups[GROUP]


def test_what_if_and_the_audit_trail(console, browser):
    """What-if at 2027-07-01: A, C and E lose access (CERT_EXPIRED); the audit trail filtered on A
    shows their grant, and exports as CSV."""
    sign_in(browser, console, "admin", "/what-if")
    browser.find_element(By.ID, "at").send_keys("2027-07-01")
    browser.find_element(By.ID, "simulate").click()
    assert text(browser, "#losses") == "3" and "walkin loss: CERT_EXPIRED: 3" in text(browser, "#by-reason")
    shot(browser, "what-if")
    browser.get(console.base + "/audit?user=" + examples.user_name("A"))
    entries = text(browser, "#entries")
    assert "grant" in entries and examples.user_name("A") in entries
    href = browser.find_element(By.ID, "csv").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    csv = requests.get(href, cookies=cookies, timeout=10)
    assert csv.text.splitlines()[0].startswith("at,run_id") and examples.user_name("A") in csv.text


def test_a_principal_lands_on_their_school_and_approves_and_withdraws(console, browser):
    """P's landing page is 0789's: G waits for P's approval, first. P approves G from it; after the
    worker's round G has access, with P's approval; P withdraws it there, and the next round removes G."""
    sign_in(browser, console, "principal")
    assert "0789" in text(browser, "h1")
    waiting = browser.find_elements(By.CSS_SELECTOR, "#to-approve tbody tr")
    assert [row.get_attribute("data-person") for row in waiting] == [console.ids["G"]]
    assert "approve for 0789" in waiting[0].text
    assert examples.user_name("A") not in browser.page_source  # 0123 is not P's
    shot(browser, "principal")
    waiting[0].find_element(By.NAME, "confirm").click()
    waiting[0].find_element(By.CSS_SELECTOR, "button.approve").click()
    assert "Approved person.g@district.org for 0789" in text(browser, ".flash.ok")
    Worker(console.ctx).step()
    assert "uid=G,ou=people" in console.target.groups[GROUP]
    browser.get(console.base + "/")
    assert "Nobody at your school waits" in text(browser, "#to-approve")
    (row,) = browser.find_elements(By.CSS_SELECTOR, "#has-access tbody tr")
    assert row.get_attribute("data-person") == console.ids["G"] and PRINCIPAL in row.text
    row.find_element(By.CSS_SELECTOR, "button.withdraw").click()  # without the confirmation: the browser refuses
    assert browser.find_elements(By.CSS_SELECTOR, ".flash.ok") == []
    row.find_element(By.NAME, "confirm").click()
    row.find_element(By.CSS_SELECTOR, "button.withdraw").click()
    assert "Withdrew the approval of person.g@district.org for 0789" in text(browser, ".flash.ok")
    Worker(console.ctx).step()
    assert "uid=G,ou=people" not in console.target.groups[GROUP]


def test_search_by_name_email_and_employee_number(console, browser):
    """The help desk finds G by the start of the family name, "given family", the email or the
    employee number; P, searching the whole district's userNames, finds only G (0789)."""
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "add", "path": "name", "value": {"givenName": "Grace", "familyName": "Okafor"}},
        {"op": "add", "path": "emails", "value": [{"value": "Grace.Okafor@district.org", "type": "work"}]},
        {"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "E0789"}}]}
    answer = console.client.patch(f"/scim/v2/Users/{console.ids['G']}", headers=AUTH, json=patch)
    assert answer.status_code == 200, answer.get_json()
    sign_in(browser, console, "helpdesk", "/people")
    browser.find_element(By.ID, "q").send_keys("okaf\n")  # the form, typed; then the same by its address
    WebDriverWait(browser, 10).until(lambda d: "q=okaf" in d.current_url)
    for query in ("okaf", "grace oka", "okafor, g", "grace.okafor@", "E078"):
        if query != "okaf":
            browser.get(console.base + "/people?q=" + quote(query))
        rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        assert [r.find_element(By.CSS_SELECTOR, "a").text for r in rows] == [examples.user_name("G")], query
        assert all(fact in rows[0].text for fact in ("Grace Okafor", "grace.okafor@district.org", "E0789", "0789"))
    shot(browser, "search")
    sign_out(browser)
    sign_in(browser, console, "principal", "/people?q=person.")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#results tbody a")] == [examples.user_name("G")]


def test_sync_now_step_by_step(console, browser):
    """Someone took A out of the group by hand. The admin syncs A from A's page: the result page
    says it waits for the worker, then — refreshing itself after the worker's round — each step:
    decided (entitled), matched (A's key → A's entry), written (grant ok), in the group."""
    console.target.groups[GROUP].discard("uid=A,ou=people")
    sign_in(browser, console, "admin", f"/people/{console.ids['A']}")
    browser.find_element(By.ID, "sync").click()
    WebDriverWait(browser, 15).until(lambda d: "/sync/" in d.current_url)
    assert browser.find_element(By.ID, "stage").get_attribute("data-stage") == "queued"
    assert "not yet" in text(browser, "#step-write")
    Worker(console.ctx).step()
    WebDriverWait(browser, 15).until(  # the page's own refresh
        lambda d: d.find_element(By.ID, "stage").get_attribute("data-stage") == "done")
    assert "walkin entitled" in text(browser, "#step-decide")
    assert f"key “{examples.user_name('A')}” → uid=A,ou=people" in text(browser, "#step-match")
    assert "grant ok uid=A,ou=people" in text(browser, "#step-write") and "in the group" in text(browser, "#step-write")
    assert "uid=A,ou=people" in console.target.groups[GROUP]
    shot(browser, "sync-now")


@pytest.mark.parametrize("name", ["pending", "waiting", "expiring", "held", "runs"])
def test_each_report_page_shows_the_reports_rows(console, browser, name):
    """Each report page's table is the admin API's report: the same rows, in the same order,
    and its summary; a principal's waiting page holds only 0789."""
    from connector.admin.roles import AdminRole

    answer = console.call(AdminRole.ADMIN, "GET", f"/reports/{name}")
    assert answer.status_code == 200, answer.get_json()
    report = answer.get_json()
    sign_in(browser, console, "admin", f"/reports/{name}")
    shown = [c for c in report["columns"] if c != "person_id"]
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in browser.find_elements(By.CSS_SELECTOR, "#rows tbody tr")]
    expected = [["" if row[c] is None else str(row[c]) for c in shown] for row in report["rows"]]
    assert cells == expected
    for key, value in report["summary"].items():
        assert f"{key.replace('_', ' ')}: {value}" in text(browser, "#summary")
    if name == "waiting":
        assert len(cells) == 6
        sign_out(browser)
        sign_in(browser, console, "principal", "/reports/waiting")
        locations = [tr.find_elements(By.TAG_NAME, "td")[3].text
                     for tr in browser.find_elements(By.CSS_SELECTOR, "#rows tbody tr")]
        assert locations == ["0789"]


LABELLED = """return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')].filter(
    e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name || e.id);"""


def test_pages_are_labelled_and_fit_a_narrow_screen(console, browser):
    """On a 360-pixel-wide window every page (the admin's, and the principal's landing page) fits
    without scrolling sideways, every field has a label, and the first Tab reaches the skip link."""
    sign_in(browser, console, "admin")
    browser.set_window_size(360, 800)
    pages = ["/", "/people?q=person.", f"/people/{console.ids['G']}", "/reports/members", "/reports/runs", "/audit",
             "/what-if"]
    for page in pages:
        browser.get(console.base + page)
        assert browser.execute_script(LABELLED) == [], page
        wide = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, (page, wide)
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("class") == "skip"
    shot(browser, "narrow")
    sign_out(browser)
    sign_in(browser, console, "principal")  # a principal on a phone
    assert browser.execute_script(LABELLED) == []
    assert browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth") <= 0
    shot(browser, "principal-narrow")
