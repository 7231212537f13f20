#!/usr/bin/env python3
"""test_dashboard_browser.py BUILD_DIR [SCREENSHOT.png]: the dashboard page
in headless Chromium (chromium + chromium-driver, driven by python3-selenium)
against a running system (thothd + two echo services + an echo client, a
governed service with its caller, a simulated PM driver):

  - the page connects its event stream and receives live ticks;
  - the wake-up, latency and ring charts receive points, the tables fill
    with the echo processes and channels;
  - the P-state chart shows the governed service's frequency, labelled
    modelled; the modelled CPU power chart has the governed service, its
    table row priced with hikey-a53; the latency table names the echo
    interface;
  - panels without a data source say so (locks: no profiled process);
  - the browser console has no error;
  - a screenshot is saved (docs/dashboard.png was made by this test, with
    THOTH_DASHBOARD_TICKS=40).
Exit 77 (CTest: skipped) with a message when Chromium is not installed.
"""
import os
import shutil
import sys

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import System, fail, wait_for  # noqa: E402
from sockdir import sock_mkdtemp  # noqa: E402  (harness put tests/common on the path)

BUILD = sys.argv[1]
SHOT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(BUILD, "dashboard.png")
TICKS = int(os.environ.get("THOTH_DASHBOARD_TICKS", "3"))
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find(*names):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


def main():
    chromium = find("chromium", "chromium-browser")
    driver_exe = find("chromedriver")
    if not chromium or not driver_exe:
        print("SKIP: headless Chromium not installed (Debian: chromium chromium-driver "
              "python3-selenium; scripts/bootstrap.sh test installs them)")
        sys.exit(77)
    try:
        from selenium import webdriver
    except ImportError:
        print("SKIP: python3-selenium not installed")
        sys.exit(77)

    # The haltpoll fixture exercises the idle-state chart (this VM shows the
    # container no cpuidle states); THOTH_DASHBOARD_REAL_SYSFS=1 shows the
    # host as it is (docs/dashboard.png: the panel then says its source is absent).
    real = os.environ.get("THOTH_DASHBOARD_REAL_SYSFS") == "1"
    env = {} if real else {"THOTH_SYSFS_ROOT": os.path.join(SRC, "tests/dashboard/sysfs-haltpoll")}
    with System(BUILD, env=env, rate=int(os.environ.get("THOTH_DASHBOARD_RATE", "200")),
                governed=True, pm_driver=True) as s:
        # Chromium puts a socket in its profile (SingletonSocket) and in
        # TMPDIR (org.chromium.Chromium.XXXXXX/SingletonSocket): both in a
        # short folder of the stage's when TMPDIR is long.
        short = sock_mkdtemp("thoth-chromium-", room=len("/org.chromium.Chromium.XXXXXX/SingletonSocket"))
        profile = os.path.join(short, "profile")
        os.mkdir(profile, 0o700)
        os.mkdir(os.path.join(short, "tmp"), 0o700)
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1000,2600", "--user-data-dir=" + profile,
                  "--no-first-run", "--disable-extensions"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        from selenium.webdriver.chrome.service import Service
        service = Service(executable_path=driver_exe, env=dict(os.environ, TMPDIR=os.path.join(short, "tmp")))
        d = webdriver.Chrome(service=service, options=opts)
        try:
            d.set_page_load_timeout(30)
            d.get(s.url)
            ticks = lambda: d.execute_script(  # noqa: E731
                "return window.thothDashboard ? window.thothDashboard.ticks : 0")
            wait_for("%d live ticks in the page" % TICKS, lambda: ticks() >= TICKS,
                     timeout=TICKS + 25, step=0.2)
            points = d.execute_script(
                "const c = window.thothDashboard.charts; const o = {};"
                "for (const k in c) o[k] = c[k].points; return o;")
            # The governed service's first OPP change may come a tick or two
            # after the first ticks: wait for it (deadline) before checking.
            wait_for("the modelled P-state chart", lambda: d.execute_script(
                "return window.thothDashboard.charts['c-pstate'].points"), timeout=20, step=0.2)
            wait_for("the modelled power chart", lambda: d.execute_script(
                "return window.thothDashboard.charts['c-power'].points"), timeout=20, step=0.2)
            points = d.execute_script(
                "const c = window.thothDashboard.charts; const o = {};"
                "for (const k in c) o[k] = c[k].points; return o;")
            for chart in ("c-wakeups", "c-latency", "c-rings", "c-pstate", "c-power") + \
                    (() if real else ("c-cpuidle",)):
                if not points.get(chart):
                    fail("chart %s received no data: %s" % (chart, points))
            badge = d.find_element("id", "pstate-source").text
            if not real and badge != "modelled":
                fail("the P-state panel is labelled %r, not modelled" % badge)
            power = d.execute_script(
                "return [...document.querySelectorAll('#t-power tbody tr')]"
                ".map(r => r.cells[0].textContent + ' ' + r.cells[2].textContent)")
            if "governed-echo hikey-a53" not in power:
                fail("the power table does not price governed-echo with hikey-a53: %s" % power)
            if "modelled" not in d.find_element("id", "p-power").text:
                fail("the power panel is not labelled modelled")
            ifaces = d.execute_script(
                "return [...document.querySelectorAll('#t-latency tbody tr')]"
                ".map(r => r.cells[2].textContent + '.' + r.cells[3].textContent)")
            if "thoth.echo.Echo.echo" not in ifaces:
                fail("the latency table does not name the echo interface: %s" % ifaces)
            status = d.find_element("id", "status").text
            if status != "live":
                fail("status shows %r" % status)
            rows = d.execute_script(
                "return [...document.querySelectorAll('#t-latency tbody tr')]"
                ".map(r => r.cells[0].textContent)")
            if "echo" not in rows:
                fail("no echo row in the latency table: %s" % rows)
            locks = d.find_element("id", "locks-note").text
            if "thothlock -- PROGRAM" not in locks:
                fail("the lock panel does not say its source is absent: %r" % locks)
            logs = d.get_log("browser")
            errors = [l for l in logs if l["level"] in ("SEVERE", "ERROR")]
            if errors:
                fail("console errors: %s" % errors)
            d.save_screenshot(SHOT)
            print("ok: %d ticks, chart points %s, no console error; screenshot %s" %
                  (ticks(), points, SHOT))
        finally:
            d.quit()
            shutil.rmtree(short, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
