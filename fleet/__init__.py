"""The company's side of the fleet: the command console, the live view and the event collector."""
