"""The recommender: consumes presence and checkout events, keeps each customer's state in
Redis, decides in one Lua script per event, and publishes prompts to associates' handhelds.
"""
