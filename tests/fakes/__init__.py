"""Fakes of outside services, reached through the production code's own clients."""
