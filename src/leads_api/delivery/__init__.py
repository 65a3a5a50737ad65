"""Webhook delivery: the address guard, the retry policy, and the deliverer that
drains the outbox (store/outbox.py writes it, store/delivery_queue.py claims from it)."""
