"""Pages speak Simplified Chinese when asked."""

from __future__ import annotations

from django.test import Client


def test_login_page_in_chinese_by_accept_language(db):
    content = Client().get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "登录" in content
    assert 'lang="zh-hans"' in content


def test_home_page_in_chinese_by_language_cookie(make_user, page, settings, anyone_creates_teams):
    client = page(make_user("lonely"))
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    content = client.get("/").content.decode()
    assert "欢迎使用 EasyAI" in content
    assert "创建团队" in content


def test_api_errors_in_chinese(people, api):
    client = api(people["team_admin"])
    response = client.delete("/api/v1/teams/vision/members/teamadmin/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 400
    assert "管理员" in response.json()["username"][0]


def test_english_stays_the_default(make_user, page):
    assert "Welcome to EasyAI" in page(make_user("lonely")).get("/").content.decode()
