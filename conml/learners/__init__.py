"""Meta-learners behind one seam: adapt, predict, represent, episodic_loss."""
