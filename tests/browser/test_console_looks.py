"""How the console looks: a screenshot to inspect, and layout checks a reviewer would make by eye."""

import pytest
from playwright.sync_api import expect

PAGES = ["/", "/pvc/ai/llm-cache/", "/restores/", "/policies/", "/activity/", "/namespace/ai/restore"]


def test_inventory_screenshot(page, tmp_path):
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto("/?namespace=media")  # other tests' PVCs may fill the first page
    expect(page.locator('section[data-namespace="media"]')).to_be_visible()
    shot = tmp_path / "inventory.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"inventory screenshot: {shot}")


@pytest.mark.parametrize("width", [1024])  # 1280 and 390: test_console_pages.py
@pytest.mark.parametrize("path", PAGES)
def test_pages_fit_the_window_without_sideways_scrolling(page, path, width):
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(path)
    expect(page.locator("main")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than a {width}px window"
    # No table spills out of its panel.
    spilled = page.evaluate("""() => [...document.querySelectorAll('.panel table')]
        .filter(t => t.getBoundingClientRect().right > t.closest('.panel').getBoundingClientRect().right + 1)
        .length""")
    assert spilled == 0


@pytest.mark.parametrize("path", PAGES)
def test_every_form_label_points_at_its_own_field(page, path):
    page.goto(path)
    problems = page.evaluate("""() => {
        const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
        const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
        const orphans = [...document.querySelectorAll('label[for]')]
            .filter(l => !document.getElementById(l.htmlFor) ||
                         document.getElementById(l.htmlFor).closest('form') !== l.closest('form'))
            .map(l => l.textContent.trim());
        return {duplicates, orphans};
    }""")
    assert problems == {"duplicates": [], "orphans": []}
