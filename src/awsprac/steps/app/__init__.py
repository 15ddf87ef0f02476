"""The application tier: the API on ECS Fargate behind an ALB (the README's "Run the API")."""
