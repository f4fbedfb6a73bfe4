"""What a run that diverged reports."""


def diverged_result(strategy, seed, task, error, metrics):
    """The result of a run that diverged at ``task``, its ``metrics`` None."""
    return dict(
        strategy=strategy,
        seed=seed,
        R=None,
        seconds=None,
        diverged=True,
        diverged_task=task,
        error=str(error),
        **dict.fromkeys(metrics),
    )
