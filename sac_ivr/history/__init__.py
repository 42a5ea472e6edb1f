"""History of demands (Decreto 11.034 art. 12; 6.523 art. 16): a customer's requests
with every change and reply, and the tracked requests for it."""
