"""Progress display through a training callback (tqdm.auto: widget bars in JupyterLab, text in a
terminal, silent with TQDM_DISABLE=1). Validation and test bars: ``atslib.display.live``."""
from __future__ import annotations


def progress_callback(total: int, initial: int = 0, every: int = 1, desc: str = "meta-train"):
    """A ``meta_train`` callback drawing a progress bar with the latest validation accuracy."""
    from tqdm.auto import tqdm
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
