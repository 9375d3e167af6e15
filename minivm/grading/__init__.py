"""minivm's autograder: `minivm grade`.

    cli.py       the command's options; outputs.py where results go
    lab.py       a lab: lab.json, hidden/weights.json, its test folders
    grader.py    jails and judges for one submission or a batch (batch.py), results.json
    plugin.py    the pytest plugin of the judge process, which runs the lab's tests
    labkit.py    what lab tests use to reach the student's module (in another process)
    sandbox.py   that process: the student's module, served as plain data over pipes
    spawner.py   how the judge starts it: forked, not exec'd, into the jail
    jail.py      the operating system's walls around it (user id, namespaces, limits)
    handout.py   the student's material: `minivm lab handout`, `minivm lab list`
    export.py    the platforms' autograders: Gradescope's zip, a PrairieLearn question

Trust: the grader and its judges run as the grader's user (root, where
Gradescope runs them); the lab's tests are trusted and run in the judge;
the student's code runs only in jailed processes under a user id of their
own and reaches the tests only as plain data.
"""
