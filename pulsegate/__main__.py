from pulsegate.cli import main

if __name__ == "__main__":  # not when a spawned child process imports it (cloud/retrain_schedule.py)
    raise SystemExit(main())
