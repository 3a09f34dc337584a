//! Bot mode (IRCv3 bot-mode): user mode `+B`, `BOT=B`, WHOIS 335, WHO flag `B`.

use palaver_test_support::TestServer;

use crate::channels::{ask, assert_silent, commands, in_channel};

#[tokio::test]
async fn bots_mark_themselves_and_show_in_whois_and_who() {
    let server = TestServer::start().await;
    let [mut alice, mut robo] = in_channel(&server, "#lobby", ["alice", "robo"]).await;

    let isupport = ask(&mut alice, "VERSION").await.join("\n");
    assert!(isupport.contains(" BOT=B "), "{isupport}");

    assert_eq!(
        ask(&mut robo, "MODE robo +B").await,
        [":robo MODE robo :+B"]
    );
    // Setting it again changes nothing and says nothing.
    assert!(ask(&mut robo, "MODE robo +B").await.is_empty());
    assert_eq!(
        ask(&mut robo, "MODE robo").await,
        [":test.server 221 robo +B"]
    );
    assert_silent(&mut alice).await;

    let whois = ask(&mut alice, "WHOIS robo").await;
    assert_eq!(
        commands(&whois),
        ["311", "319", "312", "335", "317", "318"],
        "{whois:#?}"
    );
    assert_eq!(whois[3], ":test.server 335 alice robo :is a bot on Palaver");

    assert_eq!(
        ask(&mut alice, "WHO #lobby").await,
        [
            ":test.server 352 alice #lobby ~alice 127.0.0.1 test.server alice H@ :0 Test user alice",
            ":test.server 352 alice #lobby ~robo 127.0.0.1 test.server robo HB :0 Test user robo",
            ":test.server 315 alice #lobby :End of WHO list",
        ]
    );
    assert_eq!(
        ask(&mut alice, "WHO robo %nf").await,
        [
            ":test.server 354 alice robo HB",
            ":test.server 315 alice robo :End of WHO list",
        ]
    );
    // Away bots are G, then B.
    ask(&mut robo, "AWAY :recharging").await;
    assert_eq!(
        ask(&mut alice, "WHO robo %f").await[0],
        ":test.server 354 alice GB"
    );

    assert_eq!(
        ask(&mut robo, "MODE robo -B+i").await,
        [":robo MODE robo :-B+i"]
    );
    let whois = ask(&mut alice, "WHOIS robo").await;
    assert!(!commands(&whois).contains(&"335".to_owned()), "{whois:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn others_cannot_set_bot_mode_on_you() {
    let server = TestServer::start().await;
    let [mut alice, _robo] = in_channel(&server, "#lobby", ["alice", "robo"]).await;
    assert_eq!(
        ask(&mut alice, "MODE robo +B").await,
        [":test.server 502 alice :Can't change mode for other users"]
    );
    server.shutdown().await;
}
