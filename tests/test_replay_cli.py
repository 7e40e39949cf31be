"""`lumbo replay SESSION --analyze` and `lumbo reanalyze SESSION` (through `lumbo`'s own parser):
results stored as new analyses beside the original, never over it; `lumbo sessions ID` lists
them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from api.cli import main
from recordings import RecordingStore
from recordings.make_samples import SAMPLES_DIR


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[str, str]:
    d = str(tmp_path_factory.mktemp("replay-cli"))
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["import", str(SAMPLES_DIR / "flexion_reps.csv.xz"), "--data-dir", d]) == 0
    return d, out.getvalue().strip()


def test_reanalyze_and_replay_add_analyses_and_keep_the_original(imported, capsys) -> None:
    d, sid = imported
    before = RecordingStore(d).read_recording(sid)
    assert main(["reanalyze", sid[:10], "--data-dir", d]) == 0
    out, err = capsys.readouterr()
    offline = int(out.strip())
    assert "25 repetitions" in err and "comfortable flexion 39.8°" in err
    assert main(["replay", sid, "--analyze", "--level", "6", "--data-dir", d]) == 0
    out, err = capsys.readouterr()
    replay = int(out.strip())
    assert "24 repetitions scored, 3 sets completed" in err
    assert main(["reanalyze", sid, "--data-dir", d]) == 0  # again: a third one, nothing replaced
    third = int(capsys.readouterr().out.strip())
    store = RecordingStore(d)
    kinds = [(a.id, a.kind) for a in store.analyses(sid)]
    assert kinds == [(offline, "offline"), (replay, "replay"), (third, "offline")]
    after = store.read_recording(sid)
    for role in ("upper", "lower"):
        assert after[role].acc.tobytes() == before[role].acc.tobytes()
    a, b = store.read_angles(sid, offline), store.read_angles(sid, third)
    assert np.array_equal(a["flexion_deg"], b["flexion_deg"], equal_nan=True)
    # replay (live pipeline) and offline analysis agree on the angles
    r = store.read_angles(sid, replay)
    n = min(len(r["time_s"]), len(a["time_s"]))
    assert np.nanmax(np.abs(r["flexion_deg"][-n:] - a["flexion_deg"][-n:])) < 0.05
    assert main(["sessions", sid, "--json", "--data-dir", d]) == 0
    details = json.loads(capsys.readouterr().out)
    assert [x["kind"] for x in details["analyses"]] == ["offline", "replay", "offline"]
    assert details["analyses"][1]["events"]["repetition_scored"] == 24


def test_replay_of_an_unknown_session_fails_clearly(imported, capsys) -> None:
    d, _ = imported
    assert main(["replay", "nosuch", "--analyze", "--data-dir", d]) == 1
    assert "No session 'nosuch'" in capsys.readouterr().err
    assert main(["reanalyze", "nosuch", "--data-dir", d]) == 1
    assert main(["replay", "nosuch", "--data-dir", d]) == 1
