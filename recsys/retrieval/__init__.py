"""Candidate generation: the two-tower retriever, its FAISS index, and extra channels."""
