"""`make gpu-check` (check.py) and `make memory-plan` (memory_plan.py): the project proven on a GPU in
minutes, and the memory of every preset planned without one."""
