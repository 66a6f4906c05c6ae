"""The synthetic benchmark: a data root with a planted truth (:mod:`.generator`) and its
linear probe (:mod:`.probe`)."""

from selfcross.synthetic.generator import make_synthetic

__all__ = ["make_synthetic"]
