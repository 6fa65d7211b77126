"""The ``fastseg`` command line (also ``python -m fastseg``).

Commands: ``demo``, ``info``, ``to-semantic``, ``to-instances``, ``stats``, ``relabel``,
``clean``, ``schema`` and ``redbrick``; ``fastseg <command> --help`` shows each one's
options and examples. Modules:

- :mod:`fastseg.cli.app`: argument parsing and :func:`main`;
- :mod:`fastseg.cli.batch`: inputs, planned outputs, executors and the job runner;
- :mod:`fastseg.cli.common`: options and running shared by the batch commands;
- :mod:`fastseg.cli.progress`: the progress bar and the summary;
- :mod:`fastseg.cli.volumes`, :mod:`fastseg.cli.schemas`, :mod:`fastseg.cli.redbrick`,
  :mod:`fastseg.cli.demo`: the commands.

Exit status: 0 every input done, 1 some inputs failed (one line each on stderr, the
others done), 2 usage error (nothing ran), 130 interrupted.
"""

from fastseg.cli.app import main

__all__ = ["main"]
