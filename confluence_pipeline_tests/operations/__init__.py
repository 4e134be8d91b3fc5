"""Operations: reset/delete jobs, schedule, sensors, run queue, deployment files."""
