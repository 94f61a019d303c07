from harkit.training.grid import Countdown


def test_a_job_trained_elsewhere_shows_none_of_its_files(tmp_path):
    """Whichever way a grid runs (in turn, in workers, on Ray), a run it did not train shows no scores or errors."""
    said = []
    countdown = Countdown(3, said.append)
    (tmp_path / "error.txt").write_text("a traceback of the other process")
    countdown.finish("run a", "busy", tmp_path)
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.9, "macro_f1": 0.8}')
    countdown.finish("run b", "skipped", tmp_path)
    countdown.finish("run c", "finished", tmp_path)  # the last job: no time left to estimate
    assert said == [
        "[1 of 3] run a: being trained by another process, skipped",
        "[2 of 3] run b: already finished, skipped",
        "[3 of 3] run c: finished (accuracy 0.9000, macro F1 0.8000)",
    ]
