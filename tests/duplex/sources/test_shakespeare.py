"""Shakespeare's plays as dialogues: speakers, stage directions, scenes and merging, the
split of long scenes, and the real corpus (network on first use, slow-marked)."""

from __future__ import annotations

import pytest

from assoclm.duplex.sources import load_shakespeare_dialogues, parse_play, shakespeare
from tests.duplex.sources.helpers import fake_corpus

PLAY = """\
THE TRAGEDY OF TESTING

PERSONS REPRESENTED.

ALPHA, a king.

SCENE: A castle.

ACT I.

SCENE I. A hall.

[Enter ALPHA and BETA.]

ALPHA.
Who goes there?

BETA. [Aside.]
A friend,
  a friend indeed.

[Exit ALPHA, in
haste.]

BETA.
I stay [Sits] here.

[Enter GAMMA, who

looks about.]

GAMMA
No full stop after my name.

[Exeunt.}

SCENE II. Another place,
quite far away.

ALPHA.

After a blank line.

[Enter BETA [with a lamp.]]

Still Alpha speaking.

SONG.
Hey nonny.

BETA.
Hello.

THE END
"""


def test_parse_play_speakers_directions_scenes_and_merging():
    assert parse_play(PLAY) == [
        [
            ("ALPHA", "Who goes there?"),
            ("BETA", "A friend,\na friend indeed.\nI stay here."),
            ("GAMMA", "No full stop after my name."),
        ],
        [
            ("ALPHA", "After a blank line.\nStill Alpha speaking.\nHey nonny."),
            ("BETA", "Hello."),
        ],
    ]


def test_parse_play_reads_abbreviated_title_case_speakers():
    play = "Act I.\n\nScene I. Elsinore.\n\nBer.\nWho's there?\n\nFran.\nNay, answer me.\n\n" \
           "Ber.\nLong live the king!\n\nHor.\n\n[Exit.]\n\nBer.\nWell, good night.\n\n" \
           "1 Clown.\nIs she to be buried?\n\nFarewell.\n"
    assert parse_play(play) == [[
        ("Ber", "Who's there?"), ("Fran", "Nay, answer me."),
        # Horatio says nothing, so Bernardo's two speeches merge.
        ("Ber", "Long live the king!\nWell, good night."),
        # A known limit: in a title-case play a lone "Farewell." reads as a speaker's name;
        # with no speech after it, it is dropped.
        ("1 Clown", "Is she to be buried?"),
    ]]  # fmt: skip


def _scene(n: int) -> str:
    speakers = ["ALPHA", "BETA", "GAMMA"]
    return "\n\n".join(f"{speakers[k % 3]}.\nLine {k}." for k in range(n))


@pytest.mark.parametrize(
    "n, max_events, sizes",
    [(5, 40, [5]), (5, 2, [2, 2]), (5, 4, [3, 2]), (7, 3, [3, 2, 2]), (1, 40, [])],
    ids=["n5-max40", "n5-max2", "n5-max4", "n7-max3", "n1-max40"],
)
def test_shakespeare_dialogues_split_scenes_and_alternate(monkeypatch, tmp_path, n, max_events,
                                                          sizes):  # fmt: skip
    play = f"ACT I.\n\nSCENE I.\n\n{_scene(n)}\n\nSCENE II.\n\n{_scene(2)}\n"
    fake_corpus(monkeypatch, tmp_path, shakespeare,
                {"test_play_gut.txt": play, "poem_gut.txt": "O rose\n"})  # fmt: skip
    got = load_shakespeare_dialogues(max_events=max_events)
    first = [d for d in got if d.name.startswith("shakespeare/test_play/1:")]
    assert [len(d.events) for d in first] == sizes
    assert got[-1].name == "shakespeare/test_play/2:0"
    assert len({d.name for d in got}) == len(got)
    for d in got:
        roles = [("user", "model")[k % 2] for k in range(len(d.events))]
        assert [e.role for e in d.events] == roles, d.name
    texts = [e.text for d in first for e in d.events]
    assert texts == [f"Line {k}." for k in range(len(texts))]


def test_shakespeare_rejects_tiny_max_events():
    with pytest.raises(ValueError, match="max_events must be at least 2"):
        load_shakespeare_dialogues(max_events=1)


@pytest.mark.slow
def test_real_shakespeare_dialogues():
    got = load_shakespeare_dialogues(progress=False)
    events = sum(len(d.events) for d in got)
    assert len(got) == 1161 and events == 30456, (len(got), events)
    assert len({d.name for d in got}) == len(got)
    assert all(2 <= len(d.events) <= 40 for d in got)
    hamlet = next(d for d in got if d.name == "shakespeare/hamlet/1:0")
    assert [e.text for e in hamlet.events[:3]] == [
        "Who's there?", "Nay, answer me: stand, and unfold yourself.", "Long live the king!"
    ]  # fmt: skip
    assert not any("[" in e.text or "]" in e.text for d in got for e in d.events)
