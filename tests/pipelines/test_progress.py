"""Progress lines: what a task prints (``[kfpc] step: ...`` with an ETA), and how ``kfpc run`` shows them —
one updating status line on a terminal, plain lines elsewhere — while the run log keeps everything."""

import io

from kfpc.components import _progress
from kfpc.pipelines import local_run


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_progress_line_carries_the_eta_of_the_remaining_work():
    assert _progress.remaining(done=2, total=10, elapsed=4.0) == 16.0
    assert _progress.remaining(done=10, total=10, elapsed=4.0) is None
    assert _progress.line("train", "epoch 2/10", eta_s=16.0) == "[kfpc] train: epoch 2/10 (ETA 0:16)"
    assert _progress.line("push", "waiting", eta_s=3725) == "[kfpc] push: waiting (ETA 1:02:05)"
    assert _progress.line("push", "waiting") == "[kfpc] push: waiting"
    out = io.StringIO()
    _progress.emit("train", "epoch 1/3", stream=out)
    assert out.getvalue() == "[kfpc] train: epoch 1/3\n"


def test_progress_lines_leave_the_task_output_as_plain_lines_when_not_on_a_terminal():
    log, shown = io.StringIO(), io.StringIO()
    tee = local_run._Tee(log, local_run._Progress(shown))
    tee.write("    [kfpc] train: epoch 1/2 loss=0.5\n    some keras chatter\n    [kfpc] train: ep")
    tee.write("och 2/2 loss=0.4\n")
    assert shown.getvalue() == "    train: epoch 1/2 loss=0.5\n    train: epoch 2/2 loss=0.4\n"
    assert "some keras chatter" in log.getvalue() and log.getvalue().count("[kfpc]") == 2


def test_on_a_terminal_progress_lines_replace_each_other_and_task_lines_stay():
    terminal = _Terminal()
    progress = local_run._Progress(terminal)
    progress.write_line("  train            started")
    progress.write_line("    train: epoch 1/2", transient=True)
    progress.write_line("    train: epoch 2/2", transient=True)
    progress.write_line("  train            SUCCESS     3.0 s")
    assert terminal.getvalue() == ("  train            started\n    train: epoch 1/2\r\x1b[K    train: epoch 2/2"
                                   "\r\x1b[K  train            SUCCESS     3.0 s\n")
