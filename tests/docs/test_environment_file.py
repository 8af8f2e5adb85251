"""environment.yml (for conda users) pins the same packages as uv.lock."""

from scripts.export_environment import ROOT, environment_yml


def test_environment_yml_matches_the_lock_file():
    assert (ROOT / "environment.yml").read_text() == environment_yml(), (
        "environment.yml is stale: run `make environment.yml`"
    )
