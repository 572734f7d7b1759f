"""``hessdyn run``: the resumable train → analyze → report pipeline."""
