"""The Rust client checks writes by the same schema before sending; the hub stays the authority."""

from __future__ import annotations

from pathlib import Path

from statehub.testing import HubProcess, mirror_rev, wait_until

from .schema_support import SMALL
from .test_rust import rs, rust_bin  # noqa: F401  (the fixture)

RATE_REFUSAL = (
    "invalid value for 'plant.north.rate': expected integer 0..500 (schema: plant.*.rate), got \"fast\""
)


def test_rust_set_reads_typed_input_and_is_refused_in_the_hubs_words(rust_bin: Path, hub: HubProcess) -> None:  # noqa: F811
    """statehub-rs set reads "30" as 30 for an integer key and refuses "fast" with the hub's message, exit 2."""
    with hub.client() as client:
        client.set("statehub.schema", SMALL)
    ok = rs(rust_bin, hub.data_dir, "set", "plant.north.rate", "30")
    refused = rs(rust_bin, hub.data_dir, "set", "plant.north.rate", "fast")
    with hub.client() as client:
        assert client.get("plant.north.rate").value == 30
    assert ok.returncode == 0, ok.stderr
    assert refused.returncode == 2
    assert RATE_REFUSAL in refused.stderr


def test_rust_refuses_before_sending_with_the_schema_from_the_mirror(rust_bin: Path, hub: HubProcess) -> None:  # noqa: F811
    """With the hub down, statehub-rs reads the schema from the mirror and refuses a bad value itself (exit 2, not 5)."""
    with hub.client() as client:
        written = client.set("statehub.schema", SMALL).rev
    assert wait_until(lambda: mirror_rev(hub.data_dir) >= written)
    hub.kill()
    good = rs(rust_bin, hub.data_dir, "set", "plant.north.rate", "30")
    bad = rs(rust_bin, hub.data_dir, "set", "plant.north.rate", "fast")
    assert good.returncode == 5, good.stderr  # a good value: only the hub being down stops it
    assert bad.returncode == 2, bad.stderr  # refused before sending
    assert RATE_REFUSAL in bad.stderr
