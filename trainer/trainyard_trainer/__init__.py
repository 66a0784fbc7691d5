"""trainyard-trainer: the trainer contract (trainer/README.md) as a small library.

Standard library only (Python 3.9+), so it installs into any training image:

    pip install ./trainer            # from a trainyard checkout (or the wheel it builds)

or is copied beside a script (the reference image does that: no pip in its base).

    import trainyard_trainer as ty

    ctx = ty.Contract.from_argv()          # the platform's argv; SIGTERM/SIGINT handled
    def job() -> int:
        for epoch in range(ctx.start_epoch(), ctx.total_epoch + 1):   # resume handled
            if ctx.should_stop():
                break
            ...train one epoch...
            ctx.log_train(epoch, loss=loss, accuracy=acc)
            if ctx.is_val_epoch(epoch):
                ctx.log_val(epoch, val_loss=vl, val_accuracy=va)
            if ctx.wants_checkpoint(epoch):
                ctx.save_checkpoint(epoch, lambda f: torch.save(model.state_dict(), f))
            ctx.write_progress(epoch)
        return ctx.finish()                # 0, or 143 when stopped by SIGTERM
    raise SystemExit(ty.run_guarded(job))  # exit codes of the contract
"""

from .contract import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    Contract,
    ContractError,
    Stopped,
    atomic_write,
    checkpoint_path,
    csv_text,
    install_signal_handlers,
    make_summary,
    read_params,
    run_guarded,
    should_stop,
    stop_exit_code,
    truncate_csv,
    wait,
)

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "Contract",
    "ContractError",
    "Stopped",
    "atomic_write",
    "checkpoint_path",
    "csv_text",
    "install_signal_handlers",
    "make_summary",
    "read_params",
    "run_guarded",
    "should_stop",
    "stop_exit_code",
    "truncate_csv",
    "wait",
]
__version__ = "0.1.0"
