"""ptjf.tasks: real corpora, the shared vocabulary, SeqIO tasks and mixing rates."""
