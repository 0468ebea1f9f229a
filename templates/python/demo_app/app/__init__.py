"""Sample application served by demo_service.py and hot-reloaded by the agent."""
