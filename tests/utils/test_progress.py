"""progress: passes items through, reports counts/postfix, can be switched off."""
import io
import re

import pytest

from minigen.utils import progress


@pytest.fixture(autouse=True)
def progress_on(monkeypatch):
    monkeypatch.delenv("MINIGEN_PROGRESS", raising=False)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_yields_every_item_and_reports_the_total():
    out = io.StringIO()
    bar = progress(range(5), desc="epoch 1", file=out, mininterval=0)
    items = []
    for i in bar:
        items.append(i)
        bar.set_postfix(loss=1 / 3, step=i)
    assert items == [0, 1, 2, 3, 4] and len(bar) == 5
    lines = out.getvalue().splitlines()
    assert len(lines) == 5  # one per item; the final line is not repeated
    assert [re.search(r"(\d+)/5", line).group(1) for line in lines] == ["1", "2", "3", "4", "5"]
    assert lines[-1].startswith("epoch 1: 100%|") and "it/s" in lines[-1]
    assert lines[-1].endswith("loss=0.3333, step=4]")


def test_unknown_total():
    out = io.StringIO()
    assert list(progress((i for i in range(3)), file=out)) == [0, 1, 2]
    assert re.fullmatch(r"3 it \[00:00, [\d.]+ (it/s|s/it)\]\n", out.getvalue())
    with pytest.raises(TypeError, match="unknown length"):
        len(progress(i for i in range(3)))


def test_explicit_total_and_break():
    out = io.StringIO()
    for i in progress(iter(range(10)), total=10, file=out):
        if i == 3:
            break
    assert "3/10" in out.getvalue() and out.getvalue().count("\n") == 1


def test_terminal_redraws_in_place():
    out = FakeTerminal()
    bar = progress(range(3), file=out, mininterval=0)
    list(bar)
    text = out.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1


def test_disabled(monkeypatch):
    out = io.StringIO()
    bar = progress(range(3), file=out, disable=True)
    for _ in bar:
        bar.set_postfix(loss=1.0)
    assert out.getvalue() == ""
    monkeypatch.setenv("MINIGEN_PROGRESS", "0")
    assert list(progress(range(3), file=out, mininterval=0)) == [0, 1, 2]
    assert out.getvalue() == ""


def test_writes_to_stderr_by_default(capsys):
    list(progress(range(2), desc="d"))
    captured = capsys.readouterr()
    assert captured.out == "" and "d: 100%" in captured.err
