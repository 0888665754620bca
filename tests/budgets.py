"""Hypothesis budgets relative to the loaded profile (registered in tests/conftest.py).

`ci` (`make test-all`) runs each property with the budget written in the test: today's depth.
`dev` (`make test`, the default) runs a fifth of it, at least `floor`. Write
`@settings(max_examples=examples(300))`, never a bare number, so both profiles scale it.
"""

from __future__ import annotations

from hypothesis import settings

# the profile's max_examples that means "the budget as written" (Hypothesis' own default)
FULL = 100


def examples(budget: int, *, floor: int = 5) -> int:
    """`budget` under the `ci` profile, scaled down under `dev` (read at import, when the
    test module is collected: after the profile is loaded)."""
    loaded = settings.default
    assert loaded is not None  # tests/conftest.py loads a profile before any test module
    scaled = budget * loaded.max_examples // FULL
    return min(budget, max(floor, scaled))
