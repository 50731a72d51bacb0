"""Progress display through a training callback (tqdm.auto: widget bars in JupyterLab, text in a
terminal, silent with TQDM_DISABLE=1; without tqdm installed - the core's dependencies alone - a
line on stderr every tenth of the run). Validation and test bars: ``atslib.display.live``."""
from __future__ import annotations


def progress_callback(total: int, initial: int = 0, every: int = 1, desc: str = "meta-train"):
    """A ``meta_train`` callback drawing a progress bar with the latest validation accuracy."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _lines(total, desc)
    bar = tqdm(total=total, initial=initial, desc=desc, unit="step", leave=False)
    last = {}

    def cb(rec, run):
        if "val_acc" in rec:
            last["val"] = rec["val_acc"]
        bar.update(1)
        if rec["step"] % every == 0 and last:
            bar.set_postfix(val=f"{last['val']:.3f}", refresh=False)
        if run.step >= total:
            bar.close()
        return False

    return cb


def _lines(total: int, desc: str):
    """The bar's stand-in without tqdm: ``desc: step/total (val acc)`` on stderr every tenth of the run."""
    import sys
    last, stride = {}, max(1, total // 10)

    def cb(rec, run):
        if "val_acc" in rec:
            last["val"] = rec["val_acc"]
        if run.step % stride == 0 or run.step >= total:
            val = f" (val {last['val']:.3f})" if last else ""
            print(f"{desc}: {run.step}/{total}{val}", file=sys.stderr, flush=True)
        return False

    return cb
