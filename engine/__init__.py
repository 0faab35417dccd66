"""ptjf.engine: a local JAX trainer that writes T5X's logdir layout and tags."""
