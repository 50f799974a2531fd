"""The one run lifecycle behind `litvision fit | test | predict`.

    plan    compose the config once, resolve resume=/ckpt_path=, validate (checks.py, resume.py);
            nothing is written yet, so every refusal leaves no folder behind
    execute create the run folder (run_folder.py) and take its lock, record the start or the
            resume, build once (session.py), run the command (litvision.commands), write summary.json

A run is started (folder + lock), interrupted (no summary.json; last.ckpt is its latest state)
or finished (summary.json: read-only from then on). See runner.py.
"""
