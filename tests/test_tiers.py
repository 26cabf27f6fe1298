"""The quick tier leaves out what its marks or its measured time call expensive, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.tiers import QUICK_LIMIT_S, quick_selection


@dataclass
class FakeItem:
    nodeid: str
    marks: tuple[str, ...] = ()
    seen: list[str] = field(default_factory=list)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.marks else None


def test_marked_or_measured_expensive_tests_leave_the_quick_tier() -> None:
    items = [FakeItem("a::fast"), FakeItem("a::measured_slow"), FakeItem("a::new"),
             FakeItem("a::torchrun", ("subprocess",)), FakeItem("a::chromium", ("browser",)),
             FakeItem("a::gpu", ("cuda",)), FakeItem("a::long", ("slow",))]
    seconds = {"a::fast": QUICK_LIMIT_S / 2, "a::measured_slow": QUICK_LIMIT_S * 2, "a::torchrun": 0.1}
    kept, dropped = quick_selection(items, seconds)  # type: ignore[arg-type]
    assert [i.nodeid for i in kept] == ["a::fast", "a::new"]
    assert len(dropped) == 5
