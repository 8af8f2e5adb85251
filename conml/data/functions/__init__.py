"""Function-class regression tasks for in-context learning (Garg et al. 2022)."""

from conml.data.functions.curriculum import Curriculum
from conml.data.functions.families import DecisionTrees, LinearFunctions, ReLUNets, SparseLinearFunctions
from conml.data.functions.source import FunctionTasks

__all__ = ["Curriculum", "DecisionTrees", "FunctionTasks", "LinearFunctions", "ReLUNets", "SparseLinearFunctions"]
