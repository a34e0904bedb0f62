"""Process entry points for the concurrency test; a module of their own so `spawn` can import them."""

from __future__ import annotations

from registry import NewPrediction, PredictionStatus, Registry


def write_predictions(url: str, home: str, version_id: int, batches: int, start, errors) -> None:
    """Act like the daemon: add and mark one small batch after another."""
    start.wait(30)
    try:
        with Registry.open(url=url, home=home, upgrade=False) as registry:
            for batch in range(batches):
                batch_id = registry.start_batch(version_id, 5)
                rows = [
                    NewPrediction(
                        content_sha256=f"{batch:032x}{index:032x}",
                        file_name=f"b{batch}-{index}.jpg",
                        source_path=f"/inbox/b{batch}-{index}.jpg",
                        destination_path=f"/sorted/shirt/b{batch}-{index}.jpg",
                        status=PredictionStatus.CLASSIFIED,
                        model_version_id=version_id,
                        category="shirt",
                        confidence=0.9,
                        batch_id=batch_id,
                    )
                    for index in range(5)
                ]
                stored = registry.add_predictions(rows)
                registry.mark_moved([row.id for row in stored])
                registry.finish_batch(batch_id)
    except Exception as error:
        errors.put(f"writer: {error!r}")
        raise


def promote_back_and_forth(url: str, home: str, rounds: int, start, errors) -> None:
    """Act like the CLI: promote versions 1 and 2 in turn, and roll back every third round."""
    start.wait(30)
    try:
        with Registry.open(url=url, home=home, upgrade=False) as registry:
            for round_number in range(rounds):
                registry.set_alias("default", "production", 1 + round_number % 2, reason="load test")
                if round_number % 3 == 2:
                    registry.rollback("default", reason="load test")
                    registry.set_alias(
                        "default", "production", 2 if registry.get_alias("default").version == 1 else 1
                    )
    except Exception as error:
        errors.put(f"promoter: {error!r}")
        raise
