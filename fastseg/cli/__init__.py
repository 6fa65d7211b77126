"""The ``fastseg`` command line (also ``python -m fastseg``).

Commands: ``demo``, ``info``, ``label``, ``to-semantic``, ``to-instances``, ``stats``,
``relabel``, ``clean``, ``schema``, ``redbrick``, ``evaluate``, ``index`` and ``warmup``;
``fastseg <command> --help`` shows each one's options and examples. Modules:

- :mod:`fastseg.cli.app`: the list of commands, argument parsing and :func:`main`;
- one module per command (``fastseg.cli.to_semantic`` for ``to-semantic``), each with
  ``register(commands)`` adding its parser beside its handler and job function;
- :mod:`fastseg.cli.common`: the exit-status table, help layout, shared options, the
  files every input needs, and running a batch with progress and a summary;
- :mod:`fastseg.cli.batch`: planned outputs and the executor (the folder walk and the
  batch core are :mod:`fastseg._batch`'s, shared with :mod:`fastseg.dask`);
- :mod:`fastseg.cli.progress`: the progress bar and the summary line.

Adding a command: a new module ``fastseg/cli/<command>.py`` with a ``register(commands)``
that calls :func:`fastseg.cli.common.add_command` and ``set_defaults(handler=run)``, and
one line in :data:`fastseg.cli.app.COMMANDS`. A batch command plans its jobs with
:func:`fastseg.cli.batch.plan` (or ``reading_jobs``) and runs them with
:func:`fastseg.cli.common.execute`; its job function is module-level and takes plain
data, so that it runs in worker processes too.

Exit status (every command): 0 done (every input done or skipped), 1 failed (some
inputs failed, or an output exists without ``--overwrite``), 2 usage error (nothing
ran), 130 interrupted by Ctrl-C (128 + the signal's number for TERM and HUP), 141 the
reader of stdout stopped reading.
"""

from fastseg.cli.app import main

__all__ = ["main"]
