"""The program sandbox: untrusted programs (P-CoT completions) run in OS-confined worker processes.

Its own package so that its workers, which import this directory's modules without importing
``reft_lightning`` (see ``executor.py``), see only the sandbox's files. No Lightning, no torch.
"""

from reft_lightning.sandbox.executor import ExecutionResult, ProgramExecutor

__all__ = ["ExecutionResult", "ProgramExecutor"]
