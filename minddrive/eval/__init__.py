"""Closed-loop evaluation and Bench2Drive scoring.

``scoring`` (pure Python) turns leaderboard route records into Driving Score, Success Rate,
infractions per km, Driving Efficiency and the multi-ability table; ``closed_loop`` drives
the embedded benchmark suite and scores it. Importing this package stays cheap (no torch):
``minddrive score`` and the AGENTS registry location both import it.
"""

from minddrive.eval.scoring import ScoreReport, load_records, score_path, score_records

__all__ = ["ScoreReport", "load_records", "score_path", "score_records"]
