"""tap-event-exports: raw event exports of analytics and engagement vendors as Singer records."""
