"""REST and Server-Sent Events views of carts and stock for legacy clients."""
